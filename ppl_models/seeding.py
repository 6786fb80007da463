"""Seeds for the parts of a run that must not share a random stream.

A run's ``--seed`` drives data simulation, binarization, initialisation and the
ELBO's draws. Criticism and evaluation draw with seeds derived from it, so their
draws are reproducible yet unrelated to those: replaying latents with the very
stream that simulated the data would correlate the "replicates" with the data.
"""

from __future__ import annotations

import zlib

import numpy as np


def derived_seed(seed: int, purpose: str) -> int:
    """A 32-bit seed for ``purpose`` (e.g. ``"criticism"``) derived from ``seed``.

    >>> derived_seed(0, "criticism") == derived_seed(0, "criticism") != 0
    True
    """
    entropy = [seed % 2**64, zlib.crc32(purpose.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
