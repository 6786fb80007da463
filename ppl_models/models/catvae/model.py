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

import pyro.distributions as dist
import torch
from torch import nn

from ppl_models.distributions import RelaxedOneHot, StraightThrough
from ppl_models.models.catvae.config import CatVAEConfig
from ppl_models.models.catvae.networks import build_networks
from ppl_models.models.vae.model import ModelAndGuide, VAEGuide, VAEModel


def temperature_at(config: CatVAEConfig, steps: int, steps_per_epoch: int) -> float:
    """``tau = max(floor, tau0 exp(-rate t))`` after ``steps`` training steps, t in
    steps or whole epochs (Jang et al. 2017): a function of the steps done, so a
    resumed run anneals as the straight run does."""
    t = steps if config.anneal_per == "step" else steps // steps_per_epoch
    decayed = config.temperature * math.exp(-config.anneal_rate * t)
    return max(config.min_temperature, decayed)


class RelaxedCode(nn.Module):
    """z's distribution, event (N, K): relaxed one-hot categoricals at the
    temperature (a buffer, so checkpoints and ``.to(device)`` carry it), one-hot
    ones while ``discrete``. Called with no logits, the prior: uniform over the K
    classes; with the encoder's ``logits`` (..., N, K), the posterior."""

    def __init__(self, config: CatVAEConfig) -> None:
        super().__init__()
        self.config, self.discrete = config, False
        self.register_buffer("temperature", torch.tensor(float(config.temperature)))
        k = config.num_classes
        uniform = torch.full((config.latent_dim, k), 1.0 / k)
        self.register_buffer("probs", uniform, persistent=False)

    def forward(self, logits: torch.Tensor | None = None) -> dist.TorchDistribution:
        """The prior, or the posterior of ``logits`` (..., B, N, K)."""
        params = {"probs": self.probs} if logits is None else {"logits": logits}
        if self.discrete:
            return dist.OneHotCategorical(**params).to_event(1)
        relaxed = StraightThrough if self.config.straight_through else RelaxedOneHot
        return relaxed(self.temperature, **params).to_event(1)


class CatVAE(ModelAndGuide):
    """The VAE's model and guide with the relaxed code as prior and posterior, as
    the VAE's stack trains, saves and evaluates them."""

    def __init__(self, config: CatVAEConfig) -> None:
        super().__init__()
        self.config = config
        encoder, decoder = build_networks(config.num_pixels, config.latent_dim,
                                          config.num_classes, config.hidden_dims,
                                          config.activation)  # fmt: skip
        self.model = VAEModel(config, decoder, prior=RelaxedCode(config), name="catvae")
        self.guide = VAEGuide(encoder, posterior=RelaxedCode(config), name="catvae")

    @property
    def codes(self) -> tuple[RelaxedCode, RelaxedCode]:
        """The prior's and the posterior's code, which share a temperature."""
        return self.model.prior, self.guide.posterior

    @property
    def temperature(self) -> float:
        """The relaxation's temperature now."""
        return float(self.codes[0].temperature)

    def before_step(self, steps: int, steps_per_epoch: int) -> None:
        """The training loop's hook: the temperature of the step after ``steps``."""
        tau = temperature_at(self.config, steps, steps_per_epoch)
        for code in self.codes:
            code.temperature.fill_(tau)

    @contextmanager
    def as_discrete(self) -> Iterator[None]:
        """Within the block, z is one-hot categorical in model and guide."""
        for code in self.codes:
            code.discrete = True
        try:
            yield
        finally:
            for code in self.codes:
                code.discrete = False

    reported_model = as_discrete  # a fit reports the discrete model's bounds
