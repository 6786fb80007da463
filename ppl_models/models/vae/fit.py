"""Fitting a VAE from Python in a few lines.

>>> from ppl_models.models.vae import fit_vae
>>> fit = fit_vae("digits", epochs=1, latent_dim=2, device="cpu", progress=False)
>>> fit.sample(4).shape
torch.Size([4, 64])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch

from ppl_models.data.images import ImageData, load_images
from ppl_models.device import resolve_device
from ppl_models.errors import UsageError
from ppl_models.models.vae.criticize import reconstruct, sample_images
from ppl_models.models.vae.evaluate import MAX_ELEMENTS, evaluate_bounds
from ppl_models.models.vae.model import VAE, VAEConfig
from ppl_models.models.vae.train import History, TrainSettings, train_vae
from ppl_models.seeding import caller_rng_kept, derived_seed
from ppl_models.validation import check_positive_int, check_seed


@dataclass
class VAEFit:
    """A trained VAE with its data, its training settings and its history."""

    vae: VAE
    data: ImageData
    settings: TrainSettings
    history: History

    def sample(self, num_images: int) -> torch.Tensor:
        """Pixel means of images decoded from prior draws, (num_images, P)."""
        return sample_images(self.vae, num_images)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel means of ``x`` (B, P) after encoding and decoding, (B, P)."""
        return reconstruct(self.vae, x.to(self.vae.device))

    def evaluate(
        self,
        iwae_samples: int = 100,
        num_images: int | None = None,
        *,
        seed: int = 0,
        max_elements: int = MAX_ELEMENTS,
    ) -> dict[str, float]:
        """ELBO and importance-weighted bound (nats per image) on the first
        ``num_images`` test images (all by default; at most all), with
        ``iwae_samples`` samples;
        the draws come from a seed derived from ``seed``, on forked generators, so
        the caller's random state is as it was.
        """
        available = self.data.test.shape[0]
        if num_images is not None:
            check_positive_int("iwae_images", num_images)
            if num_images > available:
                raise UsageError(
                    f"iwae_images={num_images}, but the test set has {available} images"
                )
        images = self.data.test[:num_images]
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derived_seed(seed, "evaluation"))
            return evaluate_bounds(
                self.vae, images, iwae_samples, max_elements=max_elements
            )


def fit_vae(
    dataset: str | ImageData = "digits",
    *,
    data_dir: str | Path | None = None,
    binarize: str = "dynamic",
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    elbo: str = "trace",
    num_particles: int = 1,
    seed: int = 0,
    clip_grad: float | None = None,
    checkpoint_every: int = 1,
    compile: str | None = None,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    train_images: int | None = None,
    test_images: int | None = None,
    checkpoint_path: Path | None = None,
    resume_from: dict[str, Any] | None = None,
    on_epoch_end: Callable[[History], None] | None = None,
    **config: Any,
) -> VAEFit:
    """Load ``dataset``, build a VAE and train it by amortized SVI.

    :param dataset: ``"mnist"``, ``"digits"`` (offline, 8x8), or data already
        loaded by :func:`~ppl_models.data.load_images` (then ``data_dir``,
        ``binarize``, ``train_images`` and ``test_images`` are not used).
    :param binarize: ``"dynamic"``, ``"threshold"`` or ``"none"`` (grayscale, which
        needs a continuous likelihood such as ``likelihood="continuous_bernoulli"``).
    :param elbo: ``"trace"`` (Monte Carlo KL) or ``"meanfield"`` (analytic KL).
    :param train_images: use only the first this many training images (quick runs).
    :param test_images: use only the first this many test images.
    :param clip_grad: clip the gradients' total norm to this value.
    :param compile: a :func:`torch.compile` mode (``"default"``,
        ``"reduce-overhead"``, ``"max-autotune"``) to trace and compile the ELBO
        with; ``None`` runs it through Pyro every step. Same draws, same loss.
    :param checkpoint_path: write a checkpoint there every ``checkpoint_every``
        epochs, after the last one, and on Ctrl-C.
    :param resume_from: a checkpoint record to continue training from.
    :param on_epoch_end: called with the history after every epoch.
    :param config: :class:`VAEConfig` fields: ``latent_dim``, ``architecture``,
        ``hidden_dims``, ``activation``, ``prior``, ``mixture_components``,
        ``likelihood``, ``base_depth``.
    :returns: a :class:`VAEFit`.
    """
    check_seed(seed)
    settings = TrainSettings(
        elbo=elbo,
        num_particles=num_particles,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        clip_grad=clip_grad,
        checkpoint_every=checkpoint_every,
        compile=compile,
    )
    device = resolve_device(device)
    # Seeded (and scikit-learn's first import changes Python's ``random``), yet the
    # caller's generators are as they were after the fit.
    with caller_rng_kept([device]):
        if isinstance(dataset, ImageData):
            data = dataset.to(device)
        else:
            data = load_images(
                dataset,
                binarize=binarize,
                data_dir=data_dir,
                device=device,
                limit_train=train_images,
                limit_test=test_images,
            )
        if config.get("likelihood") is None:
            config["likelihood"] = default_likelihood(data.binarize)
        vae_config = VAEConfig(image_shape=data.image_shape, **config)
        check_likelihood(vae_config.likelihood, data.binarize)
        pyro.set_rng_seed(seed)  # fixes the initial weights too
        vae = VAE(vae_config).to(device)
        history = train_vae(
            vae,
            data,
            settings,
            checkpoint_path=checkpoint_path,
            resume_from=resume_from,
            progress=progress,
            on_epoch_end=on_epoch_end,
        )
    return VAEFit(vae=vae, data=data, settings=settings, history=history)


def default_likelihood(binarize: str) -> str:
    """Bernoulli for binarized pixels, continuous Bernoulli for grayscale."""
    return "continuous_bernoulli" if binarize == "none" else "bernoulli"


def check_likelihood(likelihood: str, binarize: str) -> None:
    """A Bernoulli likelihood needs binary pixels."""
    if likelihood == "bernoulli" and binarize == "none":
        raise UsageError(
            "a Bernoulli likelihood needs binarized pixels: use --binarize dynamic or "
            "threshold, or --likelihood continuous_bernoulli or normal for grayscale"
        )
