"""TensorBoard for a VAE run: each epoch's ELBOs, speed, and a grid of samples and
reconstructions (``ppl-models fit vae --tensorboard``; the ``tensorboard`` extra).

The images are drawn from a seed derived from the run's and the epoch, with the
training generators kept, so a run with TensorBoard trains exactly as one without.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyro
import torch

from ppl_models.data.images import ImageData
from ppl_models.errors import UsageError
from ppl_models.models.vae.criticize import reconstruct, sample_images
from ppl_models.models.vae.history import History
from ppl_models.models.vae.model import VAE
from ppl_models.seeding import caller_rng_kept, derived_seed

#: images in each row of the grids: samples, then test images over reconstructions
GRID_COLUMNS = 8


def summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a UsageError saying how to get
    it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError(
            '--tensorboard needs the tensorboard extra: pip install "ppl_models'
            '[tensorboard]"'
        ) from None
    return SummaryWriter


def image_grid(images: torch.Tensor, shape: tuple[int, int], columns: int):
    """Flattened images (n, H * W), n a multiple of ``columns``, tiled row by row
    into one (1, rows * H, columns * W) image for ``add_image``."""
    height, width = shape
    rows = images.shape[0] // columns
    tiles = images.reshape(rows, columns, height, width).permute(0, 2, 1, 3)
    return tiles.reshape(1, rows * height, columns * width)


class EpochBoard:
    """Called after each epoch with the history: writes its numbers and images.

    :param log_dir: where the event files go (``RUN/tensorboard``).
    """

    def __init__(self, log_dir: Path, vae: VAE, data: ImageData, seed: int) -> None:
        self.writer = summary_writer_class()(log_dir=str(log_dir))
        self.vae, self.data, self.seed = vae, data, seed

    def __call__(self, history: History) -> None:
        epoch = history.epochs_done
        scalars = {
            "elbo/train": history.train_elbo[-1],
            "elbo/test": history.test_elbo[-1],
            "speed/epoch_seconds": history.train_seconds[-1],
            "speed/images_per_second": history.images_per_second,
        }
        if len(history.grad_norm) == epoch:  # not for epochs of an older run
            scalars["grad_norm/train"] = history.grad_norm[-1]
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, epoch)
        shape = self.data.image_shape
        with caller_rng_kept([self.vae.device]):
            pyro.set_rng_seed(derived_seed(self.seed, f"tensorboard {epoch}"))
            samples = sample_images(self.vae, 2 * GRID_COLUMNS)
            test = self.data.test[:GRID_COLUMNS]
            pairs = torch.cat([test, reconstruct(self.vae, test)])
        self.writer.add_image(
            "samples", image_grid(samples, shape, GRID_COLUMNS), epoch
        )
        self.writer.add_image(
            "reconstructions", image_grid(pairs, shape, GRID_COLUMNS), epoch
        )
        self.writer.flush()

    def close(self) -> None:
        """Write what is pending and close the event file."""
        self.writer.close()
