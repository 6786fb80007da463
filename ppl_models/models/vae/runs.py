"""VAE run directories: the settings of a run (``fit vae``'s options and
``config.json``), the checkpoint's checks, and the summary and plot written as
training goes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ppl_models.data.images import BINARIZATIONS, DATASETS, load_images
from ppl_models.errors import CheckpointError
from ppl_models.io.checkpoint import load_checkpoint, load_state
from ppl_models.io.run_dir import CHECKPOINT, write_table
from ppl_models.models.vae.fit import VAEFit, default_likelihood
from ppl_models.models.vae.model import ELBOS, LIKELIHOODS, VAE, VAEConfig
from ppl_models.models.vae.networks import ACTIVATIONS, ARCHITECTURES
from ppl_models.models.vae.priors import PRIORS
from ppl_models.models.vae.train import History, TrainSettings
from ppl_models.plots import plot_loss_trace, save_figure
from ppl_models.settings import (
    common_values,
    differing_fields,
    read_run_config,
    seed_setting,
    setting,
)


@dataclass
class VAERunConfig:
    """A VAE run. A fit resolves the sizes left to it (:meth:`resolved`) before it
    writes ``config.json``.
    """

    dataset: str = setting("mnist", "the images", choices=DATASETS)
    data_dir: Path | None = setting(None, "data root holding mnist/", recorded=False)
    train_images: int | None = setting(None, "use the first N training images (all)")
    test_images: int | None = setting(None, "use the first N test images (all)")
    binarize: str = setting(
        "dynamic",
        "dynamic: resample pixels as Bernoulli draws every epoch; "
        "threshold: at 0.5; none: grey levels",
        choices=BINARIZATIONS,
    )
    architecture: str = setting("mlp", "networks", choices=ARCHITECTURES)
    latent_dim: int | None = setting(None, "default 50 (mlp), 16 (conv)")
    hidden_dims: tuple[int, ...] = setting(
        (400,), "widths of the mlp's hidden layers", flag="--hidden-dim"
    )
    activation: str = setting(
        "softplus", "the networks' nonlinearity", choices=tuple(ACTIVATIONS)
    )
    base_depth: int = setting(32, "channels of the conv nets")
    prior: str = setting("normal", "p(z)", choices=PRIORS)
    mixture_components: int = setting(10, "components of the mixture prior")
    likelihood: str | None = setting(
        None, "default: by --binarize", choices=LIKELIHOODS
    )
    elbo: str = setting(
        "trace",
        "trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL)",
        choices=ELBOS,
    )
    num_particles: int = setting(1, "ELBO samples per image")
    epochs: int = setting(5, "epochs in all, resumed ones too", resumable=True)
    batch_size: int = setting(128, "images per step")
    lr: float = setting(1e-3, "Adam's learning rate")
    clip_grad: float | None = setting(
        None, "clip the gradient norm to this value", resumable=True
    )
    checkpoint_every: int = setting(1, "epochs between checkpoints", resumable=True)
    no_criticize: bool = setting(False, "skip the pictures and checks", recorded=False)
    seed: int = seed_setting()

    def resolved(self) -> VAERunConfig:
        """The config with the latent size by architecture and the likelihood by
        binarization, where the command line left them to the run.
        """
        latent_dim = self.latent_dim
        if latent_dim is None:
            latent_dim = 16 if self.architecture == "conv" else 50
        likelihood = self.likelihood or default_likelihood(self.binarize)
        return replace(self, latent_dim=latent_dim, likelihood=likelihood)

    def network_settings(self) -> dict[str, Any]:
        """The :class:`VAEConfig` settings, as keywords (the image shape is the
        data's)."""
        return common_values(self, VAEConfig)

    def train_settings(self, compile: str | None = None) -> TrainSettings:
        """How to train, with ``compile`` for the run's compile mode."""
        return TrainSettings(**common_values(self, TrainSettings), compile=compile)


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
    return VAEFit(vae, data, settings, History(**record["history"]))
