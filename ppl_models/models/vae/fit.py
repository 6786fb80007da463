"""Fitting a VAE from Python in a few lines (the fit it gives,
:class:`~ppl_models.models.vae.fitted.VAEFit`, is importable from here too).

>>> from ppl_models.models.vae import fit_vae
>>> fit = fit_vae("digits", epochs=1, latent_dim=2, device="cpu", progress=False)
>>> fit.sample(4).shape
torch.Size([4, 64])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import torch

from ppl_models.data.images import ImageData, load_images
from ppl_models.device import resolve_device
from ppl_models.models.vae.board import EpochBoard
from ppl_models.models.vae.config import default_likelihood
from ppl_models.models.vae.fitted import VAEFit
from ppl_models.models.vae.history import History
from ppl_models.models.vae.model import check_hidden_dims, check_likelihood
from ppl_models.models.vae.train import TrainSettings, train_vae
from ppl_models.seeding import caller_rng_kept
from ppl_models.settings import common_values
from ppl_models.validation import check_seed


def fit_vae(
    dataset: str | ImageData = "digits",
    *,
    data_dir: str | Path | None = None,
    binarize: str = "dynamic",
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    elbo: str | None = None,
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
    tensorboard: Path | None = None,
    fit_class: type[VAEFit] = VAEFit,
    **config: Any,
) -> VAEFit:
    """Load ``dataset``, build a VAE and train it by amortized SVI.

    :param dataset: ``"mnist"``, ``"digits"`` (offline, 8x8), or data already
        loaded by :func:`~ppl_models.data.load_images` (then ``data_dir``,
        ``binarize``, ``train_images`` and ``test_images`` are not used).
    :param binarize: ``"dynamic"``, ``"threshold"`` or ``"none"`` (grayscale, which
        needs a continuous likelihood such as ``likelihood="continuous_bernoulli"``).
    :param elbo: ``"trace"`` (Monte Carlo KL), ``"meanfield"`` (analytic KL) or
        ``"iwae"`` (the importance-weighted bound of ``num_particles`` samples);
        default: the model's (its run config's), ``"trace"`` for the VAE.
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
    :param tensorboard: a folder to log each epoch to for TensorBoard (its ELBOs,
        speed, samples and reconstructions; the ``tensorboard`` extra).
    :param fit_class: the fit to make, whose class attributes name the networks,
        their config and the run's config (another model's, built on this stack).
    :param config: :class:`VAEConfig` fields: ``latent_dim``, ``architecture``,
        ``hidden_dims``, ``activation``, ``prior``, ``mixture_components``,
        ``likelihood``, ``base_depth``, ``guide`` and ``flows``.
    :returns: a :class:`VAEFit`, whose ``config`` records these settings (for data
        already loaded, its name and binarization, and ``train_images`` and
        ``test_images`` as given).
    """
    check_seed(seed)
    if elbo is None:  # the default its command line has
        elbo = fit_class.run_config_class.elbo
    if "hidden_dims" in config:  # before any data loads
        check_hidden_dims(config["hidden_dims"])
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
        vae_config = fit_class.run_config_class.network_config_class(
            image_shape=data.image_shape, **config
        )
        check_likelihood(vae_config.likelihood, data.binarize)
        # Built before training, so data it cannot record are refused first.
        run_class = fit_class.run_config_class
        run_config = run_class(
            dataset=data.name,
            train_images=train_images,
            test_images=test_images,
            binarize=data.binarize,
            **common_values(vae_config, run_class),
            **common_values(settings, run_class),
        )
        pyro.set_rng_seed(seed)  # fixes the initial weights too
        vae = fit_class.network_class(vae_config).to(device)
        board = (
            None if tensorboard is None else EpochBoard(tensorboard, vae, data, seed)
        )

        def epoch_end(history: History) -> None:
            if board is not None:
                board(history)
            if on_epoch_end is not None:
                on_epoch_end(history)

        try:
            trained = train_vae(
                vae,
                data,
                settings,
                checkpoint_path=checkpoint_path,
                resume_from=resume_from,
                progress=progress,
                on_epoch_end=epoch_end,
                elbo=fit_class.make_elbo(elbo, vae_config, num_particles),
                model_name=fit_class.model_name,
            )
        finally:
            if board is not None:
                board.close()
    return fit_class(
        vae, data, settings, trained.history, run_config, trained.resume_state
    )


__all__ = ["VAEFit", "fit_vae"]
