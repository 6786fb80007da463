"""Fits saved in run directories, whatever their model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ppl_models.device import resolve_device
from ppl_models.io.run_dir import read_config
from ppl_models.registry import get_model
from ppl_models.seeding import caller_rng_kept


def load_fit(run_dir: str | Path, device: str | torch.device = "auto") -> Any:
    """Rebuild the fit that ``ppl-models fit`` saved in ``run_dir``, on ``device``.

    Returns the model's own fit object (for example a ``PPCAFit`` or a ``VAEFit``).
    The caller's random generators are left as they were.

    :raises CheckpointError: if ``run_dir`` holds no run, or its checkpoint is
        missing, damaged or does not match its ``config.json``.
    """
    config = read_config(run_dir)
    device = resolve_device(device)
    # Building the networks draws initial weights; the caller's stream is kept.
    with caller_rng_kept([device]):
        return get_model(config["model"]).load_fit(Path(run_dir), device)
