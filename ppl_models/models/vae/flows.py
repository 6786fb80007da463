"""Inverse autoregressive flows (Kingma et al. 2016) on the VAE's encoder Normal.

The guide draws ``z_0 ~ Normal(loc(x), scale(x))`` and pushes it through T steps

    z_t = sigmoid(s_t) * z_(t-1) + (1 - sigmoid(s_t)) * m_t,
    (m_t, s_t) = ARN_t(z_(t-1), h(x)),

where each ARN is an autoregressive network (output ``i`` sees inputs before ``i``
in its order) conditioned on the encoder's last hidden layer ``h(x)``: Pyro's
``ConditionalAffineAutoregressive`` (``stable=True`` is this gated update) on a
``ConditionalAutoRegressiveNN``. Successive steps reverse the order, so each
coordinate comes to depend on all the others. Drawing ``z_T`` is one pass per step,
and its density is exact, each Jacobian being triangular:
``log q(z_T | x) = log N(z_0) - sum_t log |det dz_t / dz_(t-1)|``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN
from torch import nn

#: the guide families: the encoder's Normal, or that Normal through IAF steps
GUIDES = ("normal", "iaf")


def iaf_steps(latent_dim: int, context_dim: int, count: int) -> nn.ModuleList:
    """``count`` conditional IAF steps on codes of ``latent_dim``, each conditioned
    on features ``(..., context_dim)``; every other step takes the codes in reverse
    order. Each network has one hidden layer as wide as its input and context.
    """
    steps = nn.ModuleList()
    for step in range(count):
        order = torch.arange(latent_dim)
        network = ConditionalAutoRegressiveNN(
            latent_dim,
            context_dim,
            hidden_dims=[latent_dim + context_dim],
            permutation=order.flip(0) if step % 2 else order,
        )
        steps.append(ConditionalAffineAutoregressive(network, stable=True))
    return steps


def flow_posterior(
    loc: torch.Tensor,
    scale: torch.Tensor,
    context: torch.Tensor,
    steps: nn.ModuleList,
) -> dist.TorchDistribution:
    """``q(z | x)``: Normal(loc, scale) (each ``(B, latent_dim)``) through ``steps``
    conditioned on ``context`` (B, context_dim); event shape ``(latent_dim,)``.
    """
    base = dist.Normal(loc, scale).to_event(1)
    return dist.TransformedDistribution(base, [s.condition(context) for s in steps])
