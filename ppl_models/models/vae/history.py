"""A VAE's training history, epoch by epoch, and the files a run writes from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppl_models.io.run_dir import write_table
from ppl_models.plots import plot_loss_trace, save_figure


@dataclass
class History:
    """Per-epoch numbers: ELBOs in nats per image, times in seconds, and the mean
    over the epoch's steps of the gradient's total norm (before any clipping;
    missing for epochs trained before it was recorded).
    """

    train_elbo: list[float] = field(default_factory=list)
    test_elbo: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    train_images: int = 0
    grad_norm: list[float] = field(default_factory=list)

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
