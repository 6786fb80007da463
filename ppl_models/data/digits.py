"""The 8x8 digits bundled with scikit-learn: small images that need no download."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import torch

from ppl_models.errors import DataError

TEST_SIZE = 297
SPLIT_SEED = 0
MAX_VALUE = 16.0


@lru_cache(maxsize=1)
def _split_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train and test arrays, split once per process by a fixed permutation."""
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = (bunch.images / MAX_VALUE).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    # A fixed seed, so train and test are the same sets on every machine and run.
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    train, test = order[:-TEST_SIZE], order[-TEST_SIZE:]
    return {
        "train": (images[train], labels[train]),
        "test": (images[test], labels[test]),
    }


def load_digits(
    split: Literal["train", "test"],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of scikit-learn's digits on the CPU.

    :param split: ``"train"`` (1500 images) or ``"test"`` (297 images).
    :returns: images, float32 (N, 8, 8) with values in [0, 1], and labels,
        int64 (N,) with values 0..9.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown digits split {split!r}: expected 'train' or 'test'")
    images, labels = _split_arrays()[split]
    # Copies, so a caller editing the tensors cannot change the cached arrays.
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())
