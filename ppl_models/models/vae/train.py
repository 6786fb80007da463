"""Training a VAE by amortized SVI, epoch by epoch, with checkpoints to resume from.

The training set lives on the device and batches come from an on-device permutation.
Per-step losses are summed on the device; the host reads them once per epoch (and
when the progress bar refreshes). Evaluation runs under its own forked RNG, so
evaluating or not never changes the training draws, and a run resumed from a
checkpoint takes exactly the steps the uninterrupted run would have taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch

from ppl_models.data.images import ImageData, train_batches
from ppl_models.inference import make_objective, svi_step
from ppl_models.inference.progress import LossProgress
from ppl_models.io.checkpoint import save_checkpoint
from ppl_models.models.vae.evaluate import evaluate_elbo
from ppl_models.models.vae.model import VAE, make_elbo
from ppl_models.validation import check_positive_float, check_positive_int


@dataclass
class TrainSettings:
    """How to train: objective, optimisation and schedule."""

    elbo: str = "trace"
    num_particles: int = 1
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("num_particles", self.num_particles)
        check_positive_float("lr", self.lr)


@dataclass
class History:
    """Per-epoch numbers: ELBOs in nats per image, times in seconds."""

    train_elbo: list[float] = field(default_factory=list)
    test_elbo: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    train_images: int = 0

    @property
    def epochs_done(self) -> int:
        """How many epochs have finished."""
        return len(self.train_elbo)

    @property
    def fit_seconds(self) -> float:
        """Training time, evaluation excluded."""
        return sum(self.train_seconds)

    @property
    def images_per_second(self) -> float:
        """Training images processed per second of training time."""
        return self.train_images / max(self.fit_seconds, 1e-9)


def train_vae(
    vae: VAE,
    data: ImageData,
    settings: TrainSettings,
    *,
    checkpoint_path: Path | None = None,
    resume_from: dict[str, Any] | None = None,
    progress: bool | None = None,
    on_epoch_end: Callable[[History], None] | None = None,
) -> History:
    """Train ``vae`` on ``data.train`` for ``settings.epochs`` epochs in all.

    :param checkpoint_path: where to write a checkpoint after every epoch.
    :param resume_from: a checkpoint record (see :func:`checkpoint_payload`) to go on
        from; the epochs it already did count towards ``settings.epochs``.
    :returns: the history of every epoch, resumed ones included.
    """
    elbo = make_elbo(settings.elbo, vae.config, settings.num_particles)
    objective = make_objective(vae.model, vae.guide, elbo, data.train[:2])
    optimizer = torch.optim.Adam(objective.parameters(), lr=settings.lr)
    history = History()
    if resume_from is None:
        pyro.set_rng_seed(settings.seed)
    else:
        history = restore(vae, optimizer, resume_from)
    num_train = data.train.shape[0]
    steps = -(-num_train // settings.batch_size)
    for epoch in range(history.epochs_done, settings.epochs):
        start = time.perf_counter()
        total = data.train.new_zeros(())
        with LossProgress(
            steps, f"epoch {epoch + 1}/{settings.epochs}", enabled=progress
        ) as bar:
            for x in train_batches(data, settings.batch_size):
                loss = svi_step(objective, optimizer, x)
                total += loss
                bar.update(loss / x.shape[0])
        # float() waits for the device: the epoch's time is then the real one.
        history.train_elbo.append(-float(total) / num_train)
        history.train_seconds.append(time.perf_counter() - start)
        history.train_images += num_train
        history.test_elbo.append(held_out_elbo(vae, data, settings.seed))
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path, "vae", checkpoint_payload(vae, optimizer, history)
            )
        if on_epoch_end is not None:
            on_epoch_end(history)
    return history


def held_out_elbo(vae: VAE, data: ImageData, seed: int) -> float:
    """Test ELBO (nats per image) under a forked, seeded RNG, so that evaluating
    leaves the training draws exactly as they would have been without it.
    """
    devices = [data.test.device] if data.test.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return evaluate_elbo(vae, data.test)


def checkpoint_payload(
    vae: VAE, optimizer: torch.optim.Optimizer, history: History
) -> dict[str, Any]:
    """Everything needed to resume: parameters, optimizer state, epoch, RNG state."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        # pyro.get_rng_state leaves out the CUDA generators; keep them too.
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "config": vae.config.to_dict(),
        "vae_state": vae.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "epoch": history.epochs_done,
        "history": asdict(history),
        "rng": rng,
    }


def restore(
    vae: VAE, optimizer: torch.optim.Optimizer, record: dict[str, Any]
) -> History:
    """Load a :func:`checkpoint_payload` into ``vae`` and ``optimizer``; set the RNG."""
    vae.load_state_dict(record["vae_state"])
    optimizer.load_state_dict(record["optimizer_state"])
    torch.set_rng_state(record["rng"]["torch"].cpu())
    if "cuda" in record["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in record["rng"]["cuda"]])
    return History(**record["history"])
