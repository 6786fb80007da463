"""Pyro's relaxed one-hot categoricals (Gumbel-softmax, or Concrete; Jang et al.
2017, Maddison et al. 2017), made numerically safe for training at low
temperatures: their draws have no exact zeros and lie on the simplex, so that their
log-densities are finite and Pyro's validation accepts them.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.nn import functional as F


def _relaxed_draw(
    relaxed: dist.TransformedDistribution, shape: torch.Size
) -> torch.Tensor:
    """A reparameterized draw ``shape + batch_shape + (K,)`` on the simplex."""
    # Drawn in log space, each class's log-probability floored at the dtype's
    # tiniest normal number: at a low temperature a confident q would otherwise
    # draw exact zeros, whose log-density is NaN (Pyro's straight-through version
    # clamps at 1e-7 instead, off the simplex by more than validation allows).
    log_y = relaxed.base_dist.rsample(shape)
    y = log_y.clamp(min=math.log(torch.finfo(log_y.dtype).tiny)).exp()
    # exp rounds: a draw's sum can miss 1 by more than Pyro's simplex check allows
    # (1e-6; seen in about 1 in 7 million draws), which fails an evaluation.
    return y / y.sum(-1, keepdim=True)


class RelaxedOneHot(dist.RelaxedOneHotCategorical):
    """Pyro's relaxed one-hot categorical, with draws that have no exact zeros."""

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        """Draws ``sample_shape + batch_shape + (K,)``, each on the simplex."""
        return _relaxed_draw(self, sample_shape)


class StraightThrough(dist.RelaxedOneHotCategoricalStraightThrough):
    """Pyro's straight-through version: hard one-hot draws, with the gradients and
    (its ``log_prob``) the densities of the relaxed ones."""

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        """One-hot draws ``sample_shape + batch_shape + (K,)``; the relaxed draw
        each came from is its ``_unquantize``, which ``log_prob`` reads."""
        soft = _relaxed_draw(self, sample_shape)
        hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        # Pyro's autograd Function would not survive tracing for --compile.
        value = hard + (soft - soft.detach())  # hard, with the gradient of soft
        value._unquantize = soft
        return value
