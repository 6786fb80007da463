"""The settings of a VAE run (``fit vae``'s options and ``config.json``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from ppl_models.data.images import BINARIZATIONS, DATASETS
from ppl_models.errors import UsageError
from ppl_models.inference.elbo import ELBOS
from ppl_models.models.vae.flows import GUIDES
from ppl_models.models.vae.model import LIKELIHOODS, VAEConfig
from ppl_models.models.vae.networks import ACTIVATIONS, ARCHITECTURES
from ppl_models.models.vae.priors import PRIORS
from ppl_models.models.vae.train import TrainSettings
from ppl_models.settings import (
    check_settings,
    common_values,
    seed_setting,
    setting,
)


def default_likelihood(binarize: str) -> str:
    """Bernoulli for binarized pixels, continuous Bernoulli for grayscale."""
    return "continuous_bernoulli" if binarize == "none" else "bernoulli"


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
    guide: str = setting(
        "normal",
        "q(z|x): normal: the encoder's Normal; iaf: that Normal through --flows "
        "inverse autoregressive flows conditioned on the image",
        choices=GUIDES,
        before="normal",
    )
    flows: int = setting(2, "IAF steps of --guide iaf", before=2)
    elbo: str = setting(
        "trace",
        "trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL); iwae: the "
        "importance-weighted bound of --num-particles samples (RenyiELBO, alpha 0)",
        choices=ELBOS,
    )
    num_particles: int = setting(1, "ELBO samples per image (K of --elbo iwae)")
    epochs: int = setting(5, "epochs in all, resumed ones too", resumable=True)
    batch_size: int = setting(128, "images per step")
    lr: float = setting(1e-3, "Adam's learning rate")
    clip_grad: float | None = setting(
        None, "clip the gradient norm to this value", resumable=True
    )
    checkpoint_every: int = setting(1, "epochs between checkpoints", resumable=True)
    no_criticize: bool = setting(False, "skip the pictures and checks", recorded=False)
    tensorboard: bool = setting(
        False,
        "log each epoch's ELBOs, speed, samples and reconstructions to "
        "OUT/tensorboard (needs the tensorboard extra)",
        recorded=False,
    )
    seed: int = seed_setting()

    #: the networks' config, whose fields are settings here; a
    #: :class:`~ppl_models.models.vae.network_config.NetworkConfig` subclass names
    #: its run config, which sets this
    network_config_class: ClassVar[type] = VAEConfig

    def __post_init__(self) -> None:
        # Every setting within its declared range, however the config was made;
        # a fit from Python of a user's own ImageData records that data's name.
        check_settings(self, skip=("dataset",))
        if not isinstance(self.dataset, str) or not self.dataset:
            raise UsageError(f"dataset must be a name, got {self.dataset!r}")
        if self.network_config_class.settings_class is not None:
            # a network config of settings: its checks across them, before a run
            # starts (the VAE's own leaves some settings to the run)
            self.network_config_class(**self.network_settings())

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
        """The settings of ``network_config_class`` (:class:`VAEConfig` for the
        VAE), as keywords; the image shape is the data's."""
        return common_values(self, self.network_config_class)

    def train_settings(self, compile: str | None = None) -> TrainSettings:
        """How to train, with ``compile`` for the run's compile mode."""
        return TrainSettings(**common_values(self, TrainSettings), compile=compile)
