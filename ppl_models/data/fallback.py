"""MNIST when its files are in place, else the offline digits: for tutorials and
examples that must run anywhere."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ppl_models.data.images import ImageData, load_images
from ppl_models.data.mnist import mnist_available
from ppl_models.errors import DataError


def load_mnist_or_digits(
    *,
    data_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    limit_train: int | None = None,
    limit_test: int | None = None,
    binarize: str = "dynamic",
) -> ImageData:
    """MNIST from ``data_dir`` (see :func:`~ppl_models.data.data_root`) without
    downloading; where its files are missing or unreadable, scikit-learn's 8x8
    digits, with a warning that says why and how to get MNIST.

    :param limit_train: use the first N MNIST training images (not applied to the
        digits, which are small already).
    :param limit_test: likewise for the test images.
    :returns: :class:`ImageData`; its ``name`` says which data set it is.
    """
    reason = "was not found under $PPL_MODELS_DATA/mnist/ (or data_dir)"
    if mnist_available(data_dir):
        try:
            return load_images(
                "mnist",
                binarize=binarize,
                data_dir=data_dir,
                download=False,
                device=device,
                limit_train=limit_train,
                limit_test=limit_test,
            )
        except DataError as error:
            reason = f"could not be read ({error})"
    warnings.warn(
        f"MNIST {reason}, so scikit-learn's 8x8 digits stand in; point "
        "PPL_MODELS_DATA at a folder holding mnist/ for the real experiment",
        UserWarning,
        stacklevel=2,
    )
    return load_images("digits", binarize=binarize, device=device)
