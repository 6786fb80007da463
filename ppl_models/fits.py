"""Fits saved in run directories, whatever their model.

:class:`Fit` is what a model's fit offers every caller; :func:`load_fit` rebuilds
the fit that a run directory holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from ppl_models.device import resolve_device
from ppl_models.io.run_dir import read_config
from ppl_models.registry import get_model
from ppl_models.seeding import caller_rng_kept


@runtime_checkable
class Fit(Protocol):
    """A fitted model, whatever the model.

    Every bundled model's fit implements it: a
    :class:`~ppl_models.fullbatch.FullBatchFit` for every model built on
    :class:`~ppl_models.fullbatch.FullBatchSpec` (PPCA's ``PPCAFit`` among them),
    and the VAE's ``VAEFit``.
    """

    #: the settings it was fitted with: an instance of its model's ``config_class``
    config: Any

    def summary(self) -> dict[str, Any]:
        """The fit's numbers, as ``summary.json`` holds them (strict JSON values)."""
        ...

    def criticize(self, out_dir: str | Path) -> dict[str, Any]:
        """Criticise the fit: write plots into ``out_dir``; return the numbers."""
        ...

    def save(self, run_dir: str | Path) -> None:
        """Write the fit into ``run_dir``, from which :func:`load_fit` rebuilds it."""
        ...

    def to_inference_data(self, num_samples: int = 200) -> Any:
        """The fit as ArviZ's InferenceData (``posterior``, ``posterior_predictive``,
        ``observed_data`` and, where the guide has spread, ``log_likelihood``).
        Needs the ``arviz`` extra.
        """
        ...


def load_fit(run_dir: str | Path, device: str | torch.device = "auto") -> Fit:
    """Rebuild the fit that ``ppl-models fit`` saved in ``run_dir``, on ``device``.

    Returns the model's fit, a :class:`Fit` (PPCA's ``PPCAFit``, the VAE's
    ``VAEFit``; what a model's spec's ``load_fit`` gives). The caller's random
    generators are left as they were.

    :raises CheckpointError: if ``run_dir`` holds no run, or its checkpoint is
        missing, damaged or does not match its ``config.json``.
    """
    config = read_config(run_dir)
    device = resolve_device(device)
    # Building the networks draws initial weights; the caller's stream is kept.
    with caller_rng_kept([device]):
        return get_model(config["model"]).load_fit(Path(run_dir), device)
