"""Pyro's relaxed one-hot categoricals (Gumbel-softmax, or Concrete; Jang et al.
2017, Maddison et al. 2017), made numerically safe for training at low
temperatures: their draws have no exact zeros and lie on the simplex, so that their
log-densities are finite and Pyro's validation accepts them.

``kl_divergence`` of two of them is the KL of their categoricals,
``sum_k q_k log(q_k / p_k)``, as Jang et al. train with: the relaxed densities'
own KL has no closed form. So ``TraceMeanField_ELBO`` on them is the relaxed
reconstruction term with the discrete code's KL, a surrogate that is no bound of
either model; Trace_ELBO's Monte Carlo KL of the relaxed densities is unchanged.
Pyro's and torch's own classes get no KL from this module.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import register_kl
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


@register_kl(RelaxedOneHot, RelaxedOneHot)
@register_kl(StraightThrough, StraightThrough)
def categorical_kl(q: RelaxedOneHot, p: RelaxedOneHot) -> torch.Tensor:
    """KL(Categorical(q's probs) || Categorical(p's probs)), batch_shape: the
    discrete code's KL (see the module's docstring)."""
    return (q.probs * (q.logits - p.logits)).sum(-1)
