"""VAE run directories: the checkpoint a resume goes on from, its checks against
the run's settings, and the fit rebuilt from a run directory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ppl_models import distributed
from ppl_models.data.images import load_images
from ppl_models.errors import CheckpointError, UsageError
from ppl_models.io.checkpoint import check_entries, load_checkpoint, load_state
from ppl_models.io.run_dir import CHECKPOINT
from ppl_models.models.vae.config import VAERunConfig
from ppl_models.models.vae.fitted import VAEFit
from ppl_models.models.vae.history import History
from ppl_models.models.vae.model import VAE
from ppl_models.models.vae.state import RESUME_KEYS, restore
from ppl_models.run_config import check_config_unedited, read_run_config
from ppl_models.settings import differing_fields


def resume_record(
    run_dir: Path,
    config: VAERunConfig,
    device: torch.device,
    fit_class: type[VAEFit] = VAEFit,
) -> dict[str, Any]:
    """The checkpoint in ``run_dir`` that a ``--resume`` goes on from, read onto
    ``device``, if it was written for ``config``'s networks (those of
    ``fit_class``, see :class:`VAEFit`).

    :raises CheckpointError: if there is none, it is damaged, or it was written for
        another configuration (see :func:`check_checkpoint_config`).
    :raises UsageError: if ``config.epochs`` is not beyond the epochs done: the
        run would go on with nothing to do and record fewer epochs than it has.
    """
    checkpoint = run_dir / CHECKPOINT
    record = read_checkpoint(checkpoint, device, fit_class.model_name)
    vae_config = check_checkpoint_config(record, config, checkpoint)
    check_config_unedited(type(config), run_dir, record)
    check_resumable_state(record, vae_config, checkpoint, fit_class.network_class)
    size = distributed.current().size
    if record.get("world_size", 1) != size:
        raise UsageError(
            f"{checkpoint} was written by {record.get('world_size', 1)} process(es) "
            f"training together, and this resume has {size}: each rank's shard and "
            "random stream depend on their number, so resume with as many"
        )
    if config.epochs <= record["epoch"]:
        raise UsageError(
            f"epochs={config.epochs}, but the checkpoint has {record['epoch']} "
            "epochs already: ask for more epochs in all"
        )
    return record


#: what every VAE checkpoint holds, besides the state to go on from
ENTRIES = {"config": dict, "vae_state": dict, "epoch": int, "history": dict}


def read_checkpoint(
    path: Path, device: torch.device, model: str = "vae"
) -> dict[str, Any]:
    """A checkpoint record of ``model`` (a model built on the VAE's stack), read
    onto ``device``, with each of its entries.

    :raises CheckpointError: if it is damaged or lacks an entry.
    """
    record = check_entries(load_checkpoint(path, model, device), ENTRIES, path)
    try:
        History(**record["history"])
    except TypeError:
        raise CheckpointError(
            f"{path}: its history holds entries other than "
            f"{', '.join(History.__dataclass_fields__)}"
        ) from None
    return record


def check_resumable_state(
    record: dict[str, Any], vae_config: Any, path: Path, network_class: type = VAE
) -> None:
    """Load the record's weights and optimizer state into a scratch VAE and Adam,
    so that a checkpoint that cannot go on is refused before the resume writes
    any file (its summary would be started afresh).

    :raises CheckpointError: naming what does not fit.
    """
    if "optimizer_state" not in record or "rng" not in record:
        raise CheckpointError(
            f"{path} holds no optimizer and random state: it cannot go on; fit "
            "again with --overwrite"
        )
    vae = network_class(vae_config)
    # restore also sets the random state: kept to this check
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        restore(vae, torch.optim.Adam(vae.parameters()), record, path)


def check_checkpoint_config(
    record: dict[str, Any], config: VAERunConfig, path: Path
) -> Any:
    """The checkpoint's network config (a ``config.network_config_class``:
    :class:`VAEConfig` for the VAE), if it matches the run's settings.

    :raises CheckpointError: naming the settings that differ, e.g. a checkpoint
        copied in from a run with another latent size.
    """
    config_class = config.network_config_class
    try:
        saved = config_class.from_dict(record["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path}: its network config is damaged: {error}"
        ) from None
    # Settings left unset (None) are whatever the checkpoint has.
    declared = {k: v for k, v in config.network_settings().items() if v is not None}
    expected = config_class.from_dict({**saved.to_dict(), **declared})
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
    run_dir: Path,
    device: torch.device,
    data_dir: Path | None = None,
    fit_class: type[VAEFit] = VAEFit,
) -> VAEFit:
    """Rebuild a ``fit_class`` from a run directory's config and checkpoint; its
    settings give the epochs done as ``epochs``.
    """
    run_class = fit_class.run_config_class
    config = read_run_config(run_class, run_dir)
    checkpoint = run_dir / CHECKPOINT
    record = read_checkpoint(checkpoint, device, fit_class.model_name)
    vae_config = check_checkpoint_config(record, config, checkpoint)
    check_config_unedited(run_class, run_dir, record)
    vae = fit_class.network_class(vae_config).to(device)
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
    return fit_class(
        vae,
        data,
        settings,
        History(**record["history"]),
        config=config,
        resume_state={k: record[k] for k in RESUME_KEYS if k in record},
    )
