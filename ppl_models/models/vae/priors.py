"""Priors over the VAE's latent code: a standard Normal or a learned mixture."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

PRIORS = ("normal", "mixture")


class StandardNormalPrior(nn.Module):
    """``p(z) = Normal(0, I)`` over (latent_dim,); constants are buffers."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def forward(self) -> dist.TorchDistribution:
        """The prior, with event shape (latent_dim,)."""
        return dist.Normal(self.loc, self.scale).to_event(1)


class MixturePrior(nn.Module):
    """A learned mixture of K diagonal Gaussians over (latent_dim,), as in
    TensorFlow Probability's VAE example: locations, scales and weights all learned.
    """

    def __init__(self, latent_dim: int, num_components: int = 10) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.randn(num_components, latent_dim))
        # softplus(0.5413) = 1: every component starts as a unit Gaussian.
        self.raw_scale = nn.Parameter(torch.full((num_components, latent_dim), 0.5413))
        self.logits = nn.Parameter(torch.zeros(num_components))

    def components(self) -> dict[str, torch.Tensor]:
        """The mixture's current parameters, detached: ``weights`` (K,) summing to
        one, ``loc`` and ``scale`` (K, latent_dim).
        """
        return {
            "weights": F.softmax(self.logits, -1).detach(),
            "loc": self.loc.detach(),
            "scale": F.softplus(self.raw_scale).detach(),
        }

    def forward(self) -> dist.TorchDistribution:
        """The mixture, with event shape (latent_dim,)."""
        components = dist.Normal(self.loc, F.softplus(self.raw_scale)).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)


def make_prior(name: str, latent_dim: int, num_components: int) -> nn.Module:
    """``"normal"`` or ``"mixture"`` (with ``num_components`` components)."""
    if name == "normal":
        return StandardNormalPrior(latent_dim)
    return MixturePrior(latent_dim, num_components)
