"""VAE run directories: the checkpoint a resume goes on from, its checks against
the run's settings, and the fit rebuilt from a run directory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ppl_models.data.images import load_images
from ppl_models.errors import CheckpointError
from ppl_models.io.checkpoint import load_checkpoint, load_state
from ppl_models.io.run_dir import CHECKPOINT
from ppl_models.models.vae.config import VAERunConfig
from ppl_models.models.vae.fit import VAEFit
from ppl_models.models.vae.history import History
from ppl_models.models.vae.model import VAE, VAEConfig
from ppl_models.models.vae.train import RESUME_KEYS
from ppl_models.settings import differing_fields, read_run_config


def resume_record(
    run_dir: Path, config: VAERunConfig, device: torch.device
) -> dict[str, Any]:
    """The checkpoint in ``run_dir`` that a ``--resume`` goes on from, read onto
    ``device``, if it was written for ``config``'s networks.

    :raises CheckpointError: if there is none, it is damaged, or it was written for
        another configuration (see :func:`check_checkpoint_config`).
    """
    checkpoint = run_dir / CHECKPOINT
    record = load_checkpoint(checkpoint, "vae", device)
    check_checkpoint_config(record, config, checkpoint)
    return record


def check_checkpoint_config(
    record: dict[str, Any], config: VAERunConfig, path: Path
) -> VAEConfig:
    """The checkpoint's :class:`VAEConfig`, if it matches the run's settings.

    :raises CheckpointError: naming the settings that differ, e.g. a checkpoint
        copied in from a run with another latent size.
    """
    saved = VAEConfig.from_dict(record["config"])
    # Settings left unset (None) are whatever the checkpoint has.
    declared = {k: v for k, v in config.network_settings().items() if v is not None}
    expected = VAEConfig.from_dict({**saved.to_dict(), **declared})
    differ = [
        f"{k} {getattr(saved, k)!r} in the checkpoint, {getattr(expected, k)!r} "
        "in config.json"
        for k in differing_fields(saved, expected)
    ]
    if differ:
        raise CheckpointError(
            f"{path} was written for another configuration: {'; '.join(differ)}"
        )
    return saved


def load_fit(
    run_dir: Path, device: torch.device, data_dir: Path | None = None
) -> VAEFit:
    """Rebuild a :class:`VAEFit` from a run directory's config and checkpoint; its
    settings give the epochs done as ``epochs``.
    """
    config = read_run_config(VAERunConfig, run_dir)
    record = load_checkpoint(run_dir / CHECKPOINT, "vae", device)
    vae_config = check_checkpoint_config(record, config, run_dir / CHECKPOINT)
    vae = VAE(vae_config).to(device)
    load_state(vae, record["vae_state"], run_dir / CHECKPOINT)
    data = load_images(
        config.dataset,
        binarize=config.binarize,
        data_dir=data_dir,
        device=device,
        limit_train=config.train_images,
        limit_test=config.test_images,
    )
    settings = replace(config, epochs=record["epoch"]).train_settings()
    return VAEFit(
        vae,
        data,
        settings,
        History(**record["history"]),
        config=config,
        resume_state={k: record[k] for k in RESUME_KEYS if k in record},
    )
