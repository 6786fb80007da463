"""VAE run directories: which settings define a run, the checkpoint's checks, and
the summary and plot written as training goes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ppl_models.data.images import load_images
from ppl_models.errors import CheckpointError, UsageError
from ppl_models.io.checkpoint import load_checkpoint, load_state
from ppl_models.io.run_dir import CHECKPOINT, read_config, write_table
from ppl_models.models.vae.fit import VAEFit
from ppl_models.models.vae.model import VAE, VAEConfig
from ppl_models.models.vae.train import History, TrainSettings
from ppl_models.plots import plot_loss_trace, save_figure

#: settings that define a run; on --resume they come from config.json
RUN_KEYS = (
    "dataset", "train_images", "test_images", "binarize", "architecture",
    "latent_dim", "hidden_dims", "activation", "base_depth", "prior",
    "mixture_components", "likelihood", "elbo", "num_particles", "batch_size", "lr",
    "seed",
)  # fmt: skip


def run_and_checkpoint(
    args: argparse.Namespace, run_dir: Path, device: torch.device
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The run's settings and, with ``--resume``, the checkpoint to go on from.

    A resumed run takes its settings from its ``config.json`` (only ``--epochs`` is
    new). The command line has already refused to replace a run without
    ``--overwrite`` (see :func:`ppl_models.cli.fitting.check_run_dir`).
    """
    checkpoint = run_dir / CHECKPOINT
    if args.resume:
        if not checkpoint.is_file():
            raise UsageError(f"--resume: {run_dir} holds no checkpoint to resume")
        config = read_config(run_dir)
        run = {key: config[key] for key in RUN_KEYS}
        record = load_checkpoint(checkpoint, "vae", device)
        check_checkpoint_config(record, run, checkpoint)
        return run, record
    run = {key: getattr(args, key) for key in RUN_KEYS}
    if run["latent_dim"] is None:
        run["latent_dim"] = 16 if run["architecture"] == "conv" else 50
    return run, None


VAE_CONFIG_KEYS = (
    "architecture", "latent_dim", "hidden_dims", "activation", "base_depth", "prior",
    "mixture_components", "likelihood",
)  # fmt: skip
TRAIN_KEYS = ("elbo", "num_particles", "epochs", "batch_size", "lr", "seed")


def history_summary(history: History) -> dict[str, Any]:
    """The per-epoch numbers for ``summary.json``."""
    return {
        "epochs_done": history.epochs_done,
        "train_elbo": history.train_elbo,
        "test_elbo": history.test_elbo,
        "fit_seconds": history.fit_seconds,
        "images_per_second": history.images_per_second,
    }


def write_metrics(history: History, run_dir: Path) -> None:
    """``metrics.csv``: per epoch, the ELBOs (nats per image) and training seconds."""
    write_table(
        run_dir,
        "metrics.csv",
        {
            "epoch": list(range(1, history.epochs_done + 1)),
            "train_elbo": history.train_elbo,
            "test_elbo": history.test_elbo,
            "train_seconds": history.train_seconds,
        },
    )


def save_nelbo_plot(history: History, run_dir: Path) -> None:
    """``nelbo.png``: negative ELBO per image, train and test, by epoch."""
    figure = plot_loss_trace(
        {
            "train": [-v for v in history.train_elbo],
            "test": [-v for v in history.test_elbo],
        },
        title="VAE: negative ELBO",
        xlabel="epoch",
        ylabel="negative ELBO (nats per image)",
    )
    save_figure(figure, run_dir / "nelbo.png")


def check_checkpoint_config(
    record: dict[str, Any], run: dict[str, Any], path: Path
) -> VAEConfig:
    """The checkpoint's :class:`VAEConfig`, if it matches the run's settings.

    :raises CheckpointError: naming the settings that differ, e.g. a checkpoint
        copied in from a run with another latent size.
    """
    saved = VAEConfig.from_dict(record["config"])
    declared = {k: run[k] for k in VAE_CONFIG_KEYS if run.get(k) is not None}
    expected = VAEConfig.from_dict({**saved.to_dict(), **declared})
    if expected != saved:
        differ = [
            f"{k} {getattr(saved, k)!r} in the checkpoint, {getattr(expected, k)!r} "
            "in config.json"
            for k in VAE_CONFIG_KEYS
            if getattr(saved, k) != getattr(expected, k)
        ]
        raise CheckpointError(
            f"{path} was written for another configuration: {'; '.join(differ)}"
        )
    return saved


def load_fit(
    run_dir: Path, device: torch.device, data_dir: Path | None = None
) -> VAEFit:
    """Rebuild a :class:`VAEFit` from a run directory's config and checkpoint."""
    config = read_config(run_dir)
    record = load_checkpoint(run_dir / CHECKPOINT, "vae", device)
    vae_config = check_checkpoint_config(record, config, run_dir / CHECKPOINT)
    vae = VAE(vae_config).to(device)
    load_state(vae, record["vae_state"], run_dir / CHECKPOINT)
    data = load_images(
        config["dataset"],
        binarize=config["binarize"],
        data_dir=data_dir,
        device=device,
        limit_train=config["train_images"],
        limit_test=config["test_images"],
    )
    settings = TrainSettings(
        **{k: config[k] for k in TRAIN_KEYS if k != "epochs"}, epochs=record["epoch"]
    )
    return VAEFit(vae, data, settings, History(**record["history"]))
