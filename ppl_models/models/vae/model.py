"""The variational autoencoder as a Pyro model and an amortized Pyro guide.

Generative model, for each image in a plate over the batch::

    z ~ p(z)                              Normal(0, I), or a learned mixture
    x ~ Likelihood(decoder(z))            Bernoulli(logits) over the pixels

Guide (inference network): ``q(z | x) = Normal(encoder(x)).to_event(1)``, or that
Normal through inverse autoregressive flows conditioned on the image
(``guide="iaf"``, see :mod:`ppl_models.models.vae.flows`).
"""

from __future__ import annotations

import itertools
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import ELBO
from torch import nn
from torch.nn import functional as F

from ppl_models.errors import UsageError
from ppl_models.inference.elbo import make_elbo as device_elbo
from ppl_models.inference.params import register_module
from ppl_models.models.vae.flows import GUIDES, flow_posterior, iaf_steps
from ppl_models.models.vae.network_config import NetworkConfig
from ppl_models.models.vae.networks import ACTIVATIONS, ARCHITECTURES, build_networks
from ppl_models.models.vae.priors import PRIORS, make_prior
from ppl_models.validation import check_choice, check_positive_int

LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "normal")


def check_hidden_dims(hidden_dims: object) -> None:
    """``hidden_dims`` must be a tuple (or list) of positive integers, one width
    per hidden layer; a bare int is refused rather than guessed at. A fit checks it
    before it loads any data.

    :raises UsageError: naming ``hidden_dims``.
    """
    if not isinstance(hidden_dims, tuple | list):
        raise UsageError(
            "hidden_dims must be a tuple of positive integers, one width per hidden "
            f"layer, e.g. (16,) or (400, 200); got {hidden_dims!r}"
        )
    for size in hidden_dims:
        check_positive_int("hidden_dim", size)


@dataclass(frozen=True)
class VAEConfig(NetworkConfig):
    """Everything that fixes a VAE's architecture; saved as JSON with each run."""

    latent_dim: int = 50
    architecture: str = "mlp"
    hidden_dims: tuple[int, ...] = (400,)
    activation: str = "softplus"
    base_depth: int = 32
    prior: str = "normal"
    mixture_components: int = 10
    likelihood: str = "bernoulli"
    guide: str = "normal"
    flows: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("latent_dim", self.latent_dim)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("prior", self.prior, PRIORS)
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_positive_int("mixture_components", self.mixture_components)
        check_choice("guide", self.guide, GUIDES)
        check_positive_int("flows", self.flows)
        check_hidden_dims(self.hidden_dims)
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))


class VAEModel(nn.Module):
    """``p(x, z) = p(z) p(x | z)``: prior and decoder network.

    The prior is ``config``'s (``prior``, ``latent_dim``, ``mixture_components``)
    unless a ``prior`` module is given: called with no arguments, it returns z's
    distribution (another code, such as the categorical VAE's). ``name`` is the
    model's in errors and, as ``"{name}_model"``, in Pyro's param store.
    """

    def __init__(
        self,
        config: NetworkConfig,
        decoder: nn.Module,
        prior: nn.Module | None = None,
        name: str = "vae",
    ) -> None:
        super().__init__()
        self.config, self.name = config, name
        self.decoder = decoder
        if prior is None:
            prior = make_prior(
                config.prior, config.latent_dim, config.mixture_components
            )
        self.prior = prior
        self.register_buffer("anchor", torch.zeros(()))  # tells the model's device
        if config.likelihood == "normal":
            # One learned pixel noise scale, positive through a softplus;
            # softplus(-2.252) = 0.1.
            self.raw_pixel_scale = nn.Parameter(torch.tensor(-2.252))

    def forward(
        self, x: torch.Tensor | None = None, num_images: int | None = None
    ) -> torch.Tensor:
        """Run the generative program, observing ``x`` when it is given.

        :param x: images (B, P) in [0, 1]; ``None`` to generate ``num_images``.
        :returns: x (B, P): the observed or generated images.
        """
        batch = plate_size(x, num_images, f"the {self.name} model")
        register_module(f"{self.name}_model", self)
        with pyro.plate("data", batch, dim=-1, device=self.anchor.device):
            z = pyro.sample("z", self.prior())
            logits = self.decoder(z)
            return pyro.sample("x", self.likelihood(logits), obs=x)

    def pixel_scale(self) -> torch.Tensor:
        """The Normal likelihood's learned pixel noise scale (0-dim, positive)."""
        return F.softplus(self.raw_pixel_scale)

    def likelihood(self, logits: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | z)`` from decoder logits (..., B, P), event shape (P,)."""
        if self.config.likelihood == "bernoulli":
            pixels = dist.Bernoulli(logits=logits)
        elif self.config.likelihood == "continuous_bernoulli":
            pixels = dist.ContinuousBernoulli(logits=logits)
        else:
            pixels = dist.Normal(torch.sigmoid(logits), self.pixel_scale())
        return pixels.to_event(1)


class VAEGuide(nn.Module):
    """``q(z | x) = Normal(encoder(x))``, amortized over images; with ``flows`` IAF
    steps, that Normal pushed through them, conditioned on the encoder's features.

    Given a ``posterior`` module instead, ``q(z | x) = posterior(encoder(x))``: it
    maps the encoder's output to z's distribution (another code, such as the
    categorical VAE's). ``name`` is the guide's in errors and, as
    ``"{name}_guide"``, in Pyro's param store.
    """

    def __init__(
        self,
        encoder: nn.Module,
        flows: int = 0,
        posterior: nn.Module | None = None,
        name: str = "vae",
    ) -> None:
        super().__init__()
        self.encoder, self.posterior, self.name = encoder, posterior, name
        self.register_buffer("anchor", torch.zeros(()))
        self.flows = nn.ModuleList()
        if flows:
            self.flows = iaf_steps(encoder.latent_dim, encoder.feature_dim, flows)

    def forward(self, x: torch.Tensor, num_images: int | None = None) -> torch.Tensor:
        """Sample ``z`` (B, latent_dim) from ``q(z | x)`` for images ``x`` (B, P)."""
        if x is None:
            raise UsageError(f"the {self.name} guide encodes images: it needs x")
        register_module(f"{self.name}_guide", self)
        with pyro.plate("data", x.shape[-2], dim=-1, device=self.anchor.device):
            if self.posterior is not None:
                return pyro.sample("z", self.posterior(self.encoder(x)))
            if not self.flows:
                loc, scale = self.encoder(x)
                return pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            loc, scale, features = self.encoder.with_features(x)
            return pyro.sample("z", flow_posterior(loc, scale, features, self.flows))


class ModelAndGuide(nn.Module):
    """What the VAE's stack trains, saves and evaluates: a network module holding a
    Pyro ``model`` and ``guide``, each an ``nn.Module`` taking images ``x`` (B, P)
    (the model also ``x=None, num_images=B``, to generate), with one latent site
    ``"z"`` and an observed site ``"x"``. It may also define
    ``before_step(steps_done, steps_per_epoch)``, which training calls before every
    step (see :func:`ppl_models.models.vae.train.train_vae`).
    """

    model: nn.Module
    guide: nn.Module

    @property
    def device(self) -> torch.device:
        """Where the parameters and buffers live."""
        return next(itertools.chain(self.parameters(), self.buffers())).device

    def reported_model(self) -> AbstractContextManager[None]:
        """A block in which model and guide are those whose bounds a fit reports
        (its held-out ELBO, ``evaluate``): by default, as they are. A model of the
        stack trained on a surrogate (the categorical VAE's relaxation) gives the
        model it stands for."""
        return nullcontext()


class VAE(ModelAndGuide):
    """A model and its guide, kept as two modules as Pyro's ELBO modules expect.

    Both are plain ``nn.Module``s, not ``PyroModule``s: with module-local
    parameters a ``PyroModule`` emits a ``param`` message for every weight of a
    submodule it touches, on every run, which costs each training step time and
    buys nothing here, since a PyTorch optimizer takes the parameters directly.
    Outside module-local mode (Pyro's default, and a user's own ``SVI``) each
    registers its parameters with ``pyro.module`` as the ``"vae_model"`` and
    ``"vae_guide"`` modules, so ``pyro.optim`` finds and trains them; the zoo's own
    fits, evaluation and criticism run in module-local mode and skip that.

    ``vae.to(device)`` moves networks, prior constants and learned prior alike.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        encoder, decoder = build_networks(
            config.architecture,
            config.image_shape,
            config.latent_dim,
            config.hidden_dims,
            config.activation,
            config.base_depth,
        )
        self.model = VAEModel(config, decoder)
        flows = config.flows if config.guide == "iaf" else 0
        self.guide = VAEGuide(encoder, flows)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and sd of ``z`` for images (B, P): two (B, latent_dim);
        under an IAF guide, those of its Normal before the flows.
        """
        return self.guide.encoder(x)


def make_elbo(name: str, config: VAEConfig, num_particles: int = 1) -> ELBO:
    """``"trace"`` (Monte Carlo KL), ``"meanfield"`` (analytic KL, Monte Carlo for
    an IAF guide) or ``"iwae"`` (the importance-weighted bound of ``num_particles``)
    for a VAE of ``config``, or another model of its stack, whose config names its
    ``prior`` (see :func:`ppl_models.inference.elbo.make_elbo`).

    :raises UsageError: for a mixture prior with analytic KL, which has no closed form.
    """
    if name == "meanfield" and config.prior == "mixture":
        raise UsageError(
            "--elbo meanfield needs a closed-form KL, which a mixture prior does not "
            "have: use --elbo trace with --prior mixture"
        )
    return device_elbo(name, num_particles, max_plate_nesting=1)


def plate_size(x: torch.Tensor | None, num_images: int | None, model: str) -> int:
    """A model's data plate size: B of images ``x`` (B, P), else ``num_images``.

    :raises UsageError: naming ``model`` if both are None.
    """
    if x is not None:
        return x.shape[-2]
    if num_images is None:
        raise UsageError(f"{model} needs images x or num_images")
    return num_images


def check_likelihood(likelihood: str, binarize: str) -> None:
    """A Bernoulli likelihood needs binary pixels."""
    if likelihood == "bernoulli" and binarize == "none":
        raise UsageError(
            "a Bernoulli likelihood needs binarized pixels: use --binarize dynamic or "
            "threshold, or --likelihood continuous_bernoulli or normal for grayscale"
        )
