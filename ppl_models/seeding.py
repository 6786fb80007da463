"""Seeds for the parts of a run that must not share a random stream.

A run's ``--seed`` drives data simulation, binarization, initialisation and the
ELBO's draws. Criticism and evaluation draw with seeds derived from it, so their
draws are reproducible yet unrelated to those: replaying latents with the very
stream that simulated the data would correlate the "replicates" with the data.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def derived_seed(seed: int, purpose: str) -> int:
    """A 32-bit seed for ``purpose`` (e.g. ``"criticism"``) derived from ``seed``.

    >>> derived_seed(0, "criticism") == derived_seed(0, "criticism") != 0
    True
    """
    entropy = [seed % 2**64, zlib.crc32(purpose.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


@contextmanager
def caller_rng_kept(
    devices: Sequence[torch.device | str] | None = None,
) -> Iterator[None]:
    """Let a block seed and draw freely, then give the caller back the generators it
    had: torch's CPU generator and those of the CUDA ``devices``, Python's
    ``random`` and NumPy's global one (the ones ``pyro.set_rng_seed`` seeds).

    :param devices: the devices the block draws on (CPU entries are ignored);
        ``None`` for every CUDA device if CUDA is in use already, else none.
    """
    if devices is None:
        count = torch.cuda.device_count() if torch.cuda.is_initialized() else 0
        devices = [torch.device("cuda", i) for i in range(count)]
    cuda = sorted(
        {torch.device(d) for d in devices if torch.device(d).type == "cuda"}, key=str
    )
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def rng_state() -> dict[str, Any]:
    """torch's CPU generator and, where CUDA is present, every CUDA generator."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA's part where CUDA is present)."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
