"""The settings of a PPCA run: ``ppl-models fit ppca``'s options and ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ppl_models.fullbatch import FullBatchConfig
from ppl_models.models.ppca.model import INFERENCE_METHODS
from ppl_models.settings import setting

#: the noise scale of the lecture's simulated experiment
SIMULATION_NOISE_SCALE = 0.5


@dataclass
class PPCARunConfig(FullBatchConfig):
    """A PPCA run: the shared full-batch settings, PPCA's sizes and noise, and MAP
    by default. With ``data``, a run records the file's N and D as
    ``num_datapoints`` and ``data_dim``.

    On a user's data the mean and the noise scale are learned unless given; a new
    run on simulated data (the lecture's experiment) records the noise scale 0.5,
    known, and a zero mean (see ``PPCASpec.resolve_config``). ``noise_scale=None``
    learns it.
    """

    inference: str = setting(
        "map",
        "map: joint point estimates of w and z; collapsed: z integrated out, a point "
        "estimate of w; meanfield: a Normal guide for each of w and z",
        choices=tuple(INFERENCE_METHODS),
    )
    data: Path | None = setting(
        None, "a .npy or .csv file of shape (N, data_dim); default: simulate"
    )
    num_datapoints: int = setting(5000, "N, when simulating")
    data_dim: int = setting(2, "D, when simulating")
    latent_dim: int = setting(1, "K, the principal axes")
    noise_scale: float | None = setting(
        None,
        "sigma, the noise sd, fixed at this value; default: learned from a data "
        f"file, {SIMULATION_NOISE_SCALE} (known) when simulating",
    )
    mean: str = setting(
        "auto",
        "the mean mu: learned, zero (the lecture's), or auto: learned for a data "
        "file, zero when simulating",
        choices=("auto", "learned", "zero"),
        before="zero",
    )
    ppc_samples: int = setting(500, "replicated data sets for the predictive checks")
    against_nuts: bool = setting(
        False,
        "also sample the posterior of w by NUTS (z integrated out, mu and sigma at "
        "the fit's values) and hold the fit against it: vs_nuts in summary.json, "
        "vs_nuts.png",
        before=False,
    )
    nuts_samples: int = setting(500, "NUTS draws kept, with --against-nuts", before=500)
    nuts_warmup: int = setting(
        300, "NUTS warm-up steps, with --against-nuts", before=300
    )

    @property
    def learns_mean(self) -> bool:
        """Whether the fit learns ``mu`` (``auto``: for a data file)."""
        if self.mean == "auto":
            return self.data is not None
        return self.mean == "learned"

    @property
    def simulation_noise_scale(self) -> float:
        """The noise scale simulated data are drawn with: the given one, else the
        lecture's 0.5."""
        return SIMULATION_NOISE_SCALE if self.noise_scale is None else self.noise_scale
