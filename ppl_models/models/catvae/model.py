"""The categorical VAE as a Pyro model and guide (Jang et al. 2017; Maddison et al.
2017). For each image, a code z of N latents, each one-hot over K classes::

    z_n ~ RelaxedOneHotCategorical(tau, probs=1/K)     n = 1..N, event (N, K)
    x ~ Bernoulli(logits=decoder(z flattened))          event (P,)
    q(z | x) = RelaxedOneHotCategorical(tau, logits=encoder(x))

The relaxation (Gumbel-softmax, or Concrete) makes z differentiable in the encoder's
logits, the more nearly one-hot the lower the temperature tau, which training anneals
(:func:`temperature_at`). With ``straight_through`` the decoder reads the hard
one-hot code, its gradient taken through the relaxed one (both numerically safe
versions of Pyro's, :mod:`ppl_models.distributions`). TraceMeanField_ELBO (the
default) takes the relaxed reconstruction term and the KL of the categoricals, as
Jang et al. do; Trace_ELBO computes the relaxed (Concrete) ELBO, its KL a Monte Carlo
one of the relaxed densities, which learns far more slowly.
:meth:`CatVAE.as_discrete` swaps in one-hot categoricals, the discrete model itself,
whose bounds a fit reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppl_models.distributions import RelaxedOneHot, StraightThrough
from ppl_models.errors import UsageError
from ppl_models.inference.params import register_module
from ppl_models.models.catvae.config import CatVAEConfig
from ppl_models.models.catvae.networks import build_networks
from ppl_models.models.vae.model import ModelAndGuide, plate_size


def temperature_at(config: CatVAEConfig, steps: int, steps_per_epoch: int) -> float:
    """``tau = max(floor, tau0 exp(-rate t))`` after ``steps`` training steps, t in
    steps or whole epochs (Jang et al. 2017): a function of the steps done, so a
    resumed run anneals as the straight run does."""
    t = steps if config.anneal_per == "step" else steps // steps_per_epoch
    decayed = config.temperature * math.exp(-config.anneal_rate * t)
    return max(config.min_temperature, decayed)


class _Latents(nn.Module):
    """The code's distribution at the temperature, a buffer (so checkpoints and
    ``.to(device)`` carry it), as model and guide share it."""

    def __init__(self, config: CatVAEConfig) -> None:
        super().__init__()
        self.config, self.discrete = config, False
        self.register_buffer("temperature", torch.tensor(float(config.temperature)))

    def code(self, **params: torch.Tensor) -> dist.TorchDistribution:
        """z's distribution from ``probs`` or ``logits`` (..., N, K): event (N, K)."""
        if self.discrete:
            return dist.OneHotCategorical(**params).to_event(1)
        relaxed = StraightThrough if self.config.straight_through else RelaxedOneHot
        return relaxed(self.temperature, **params).to_event(1)


class CatVAEModel(_Latents):
    """``p(x, z) = p(z) p(x | z)``: uniform classes, decoder, Bernoulli pixels."""

    def __init__(self, config: CatVAEConfig, decoder: nn.Module) -> None:
        super().__init__(config)
        self.decoder, k = decoder, config.num_classes
        self.register_buffer("probs", torch.full((config.latent_dim, k), 1.0 / k))

    def forward(self, x: torch.Tensor | None = None, num_images: int | None = None):
        """Observe images ``x`` (B, P), or generate ``num_images``: x (B, P)."""
        batch = plate_size(x, num_images, "the categorical VAE's model")
        register_module("catvae_model", self)
        with pyro.plate("data", batch, dim=-1, device=self.probs.device):
            z = pyro.sample("z", self.code(probs=self.probs))
            logits = self.decoder(z.flatten(-2))
            return pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


class CatVAEGuide(_Latents):
    """``q(z | x)``: each latent's class logits from the encoder, amortized."""

    def __init__(self, config: CatVAEConfig, encoder: nn.Module) -> None:
        super().__init__(config)
        self.encoder = encoder

    def forward(self, x: torch.Tensor, num_images: int | None = None) -> torch.Tensor:
        """Sample z (B, N, K) for images ``x`` (B, P)."""
        if x is None:
            raise UsageError("the categorical VAE's guide encodes images: it needs x")
        register_module("catvae_guide", self)
        with pyro.plate("data", x.shape[-2], dim=-1, device=self.temperature.device):
            return pyro.sample("z", self.code(logits=self.encoder(x)))


class CatVAE(ModelAndGuide):
    """Model and guide, as the VAE's stack trains, saves and evaluates them."""

    def __init__(self, config: CatVAEConfig) -> None:
        super().__init__()
        self.config = config
        encoder, decoder = build_networks(config.num_pixels, config.latent_dim,
                                          config.num_classes, config.hidden_dims,
                                          config.activation)  # fmt: skip
        self.model = CatVAEModel(config, decoder)
        self.guide = CatVAEGuide(config, encoder)

    def before_step(self, steps: int, steps_per_epoch: int) -> None:
        """The training loop's hook: the temperature of the step after ``steps``."""
        for part in (self.model, self.guide):
            part.temperature.fill_(temperature_at(self.config, steps, steps_per_epoch))

    @contextmanager
    def as_discrete(self) -> Iterator[None]:
        """Within the block, z is one-hot categorical in model and guide."""
        self.model.discrete = self.guide.discrete = True
        try:
            yield
        finally:
            self.model.discrete = self.guide.discrete = False

    reported_model = as_discrete  # a fit reports the discrete model's bounds
