"""The settings of a PPCA run: ``ppl-models fit ppca``'s options and ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ppl_models.fullbatch import FullBatchConfig
from ppl_models.models.ppca.model import INFERENCE_METHODS
from ppl_models.settings import setting


@dataclass
class PPCARunConfig(FullBatchConfig):
    """A PPCA run: the shared full-batch settings, PPCA's sizes and noise, and MAP
    by default. With ``data``, a run records the file's N and D as
    ``num_datapoints`` and ``data_dim``.
    """

    inference: str = setting(
        "map",
        "map: point estimates of w and z; meanfield: a Normal guide for each",
        choices=tuple(INFERENCE_METHODS),
    )
    data: Path | None = setting(
        None, "a .npy or .csv file of shape (N, data_dim); default: simulate"
    )
    num_datapoints: int = setting(5000, "N, when simulating")
    data_dim: int = setting(2, "D, when simulating")
    latent_dim: int = setting(1, "K, the principal axes")
    noise_scale: float = setting(0.5, "sigma, the known noise sd")
    ppc_samples: int = setting(500, "replicated data sets for the predictive checks")
