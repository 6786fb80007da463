"""ELBO estimators whose loss stays on the device.

Pyro's :class:`~pyro.infer.Trace_ELBO`, :class:`~pyro.infer.TraceMeanField_ELBO`
and :class:`~pyro.infer.RenyiELBO` (``alpha=0``: the importance-weighted bound of
Burda et al. 2016) compute the same estimators, but their losses read every sample
site's on the host (``torch_item``, ``item``) and check it for NaN, so each step
waits for the device several times. The classes here give the same value and the same
gradient with no host read: the watch in :mod:`ppl_models.inference.guard` catches
NaN instead, on the device. Without host reads the loss can also be traced into a
graph (see :mod:`ppl_models.inference.compiled`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.distributions.util import is_identically_zero, scale_and_mask
from pyro.infer import ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.trace_elbo import _compute_log_r
from pyro.infer.util import (
    check_fully_reparametrized,
    get_dependent_plate_dims,
    torch_sum,
)
from pyro.poutine import Trace
from torch.distributions import kl_divergence

from ppl_models.validation import check_choice, check_positive_int

#: the estimators by name: Monte Carlo KL (Trace_ELBO), analytic KL where one is
#: registered (TraceMeanField_ELBO), or the importance-weighted bound of its
#: particles (RenyiELBO with alpha = 0)
ELBOS = ("trace", "meanfield", "iwae")


def make_elbo(kind: str, num_particles: int = 1, **options: Any) -> ELBO:
    """The device-side ELBO ``kind`` names (one of :data:`ELBOS`) with
    ``num_particles`` samples, vectorized from two on (one needs no particle plate,
    which would only add a dim); ``options`` go to the class (``max_plate_nesting``).

    :raises UsageError: naming an unknown kind or a particle count below one.
    """
    check_choice("elbo", kind, ELBOS)
    check_positive_int("num_particles", num_particles)
    elbo_class = {
        "trace": DeviceTrace_ELBO,
        "meanfield": DeviceTraceMeanField_ELBO,
        "iwae": DeviceIWAE_ELBO,
    }[kind]
    return elbo_class(
        num_particles=num_particles, vectorize_particles=num_particles > 1, **options
    )


class DeviceTrace_ELBO(Trace_ELBO):
    """:class:`~pyro.infer.Trace_ELBO` (Monte Carlo KL, score-function terms for
    non-reparameterized sites) whose loss is a 0-dim device tensor, never read on the
    host.
    """

    def differentiable_loss(
        self, model: Any, guide: Any, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Negative ELBO (0-dim) whose gradient is that of the surrogate loss."""
        loss: Any = 0.0
        surrogate: Any = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            elbo, surrogate_elbo = self._particle(model_trace, guide_trace)
            loss = loss - elbo / self.num_particles
            surrogate = surrogate - surrogate_elbo / self.num_particles
        if not torch.is_tensor(surrogate):  # no sample site contributed anything
            return torch.zeros(())
        # The value is the ELBO's, the gradient the surrogate's (as in Pyro, where the
        # surrogate's value is subtracted as a Python float).
        return surrogate + (loss - surrogate).detach()

    def _particle(
        self, model_trace: Trace, guide_trace: Trace
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ELBO, surrogate ELBO) of one particle, as in Pyro's Trace_ELBO."""
        elbo: Any = 0.0
        surrogate: Any = 0.0
        log_r = None
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                elbo = elbo + site["log_prob_sum"].detach()
                surrogate = surrogate + site["log_prob_sum"]
        for site in guide_trace.nodes.values():
            if site["type"] != "sample":
                continue
            _, score_function_term, entropy_term = site["score_parts"]
            elbo = elbo - site["log_prob_sum"].detach()
            if not is_identically_zero(entropy_term):
                surrogate = surrogate - entropy_term.sum()
            if not is_identically_zero(score_function_term):
                if log_r is None:
                    log_r = _compute_log_r(model_trace, guide_trace)
                weight = log_r.sum_to(site["cond_indep_stack"])
                surrogate = surrogate + (weight * score_function_term).sum()
        return elbo, surrogate


class DeviceTraceMeanField_ELBO(TraceMeanField_ELBO):
    """:class:`~pyro.infer.TraceMeanField_ELBO` (analytic KL where one is registered)
    whose loss is a 0-dim device tensor, never read on the host.
    """

    def differentiable_loss(
        self, model: Any, guide: Any, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Negative ELBO (0-dim); all sites are reparameterized, so value and
        gradient come from the same expression.
        """
        loss: Any = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss - self._particle(model_trace, guide_trace) / self.num_particles
        return loss if torch.is_tensor(loss) else torch.zeros(())

    def _particle(self, model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
        """The ELBO of one particle, as in Pyro's TraceMeanField_ELBO, with its
        checks. Those that need no host read hold with validation off too: a
        guide site without ``rsample`` would silently get no gradient.
        """
        elbo: Any = 0.0
        for name, model_site in model_trace.nodes.items():
            if model_site["type"] != "sample":
                continue
            if model_site["is_observed"]:
                elbo = elbo + model_site["log_prob_sum"]
                continue
            guide_site = guide_trace.nodes[name]
            check_fully_reparametrized(guide_site)
            try:
                kl = kl_divergence(guide_site["fn"], model_site["fn"])
            except NotImplementedError:
                entropy_term = guide_site["score_parts"].entropy_term
                elbo = elbo + model_site["log_prob_sum"] - _sum(entropy_term)
                continue
            kl = scale_and_mask(kl, scale=guide_site["scale"], mask=guide_site["mask"])
            batch_shape = guide_site["fn"].batch_shape
            if not torch.is_tensor(kl):  # a fully masked site: a constant per element
                elbo = elbo - kl * batch_shape.numel()
                continue
            if kl.shape != batch_shape:
                # As Pyro's assertion: the model site sits in plates the guide
                # site lacks, so summing the KL would count it the wrong number of
                # times.
                raise ValueError(
                    f"site {name!r}: KL(guide || model) has shape {tuple(kl.shape)}, "
                    f"the guide's distribution batch shape {tuple(batch_shape)}: put "
                    "the guide site in the same plates as the model site"
                )
            elbo = elbo - kl.sum()
        for name, guide_site in guide_trace.nodes.items():
            if guide_site["type"] == "sample" and name not in model_trace.nodes:
                if not guide_site["infer"].get("is_auxiliary"):
                    raise ValueError(
                        f"guide site {name!r} is not in the model: mark it "
                        "infer={'is_auxiliary': True} if it is auxiliary"
                    )
                check_fully_reparametrized(guide_site)
                # auxiliary guide sites contribute their entropy
                elbo = elbo - _sum(guide_site["score_parts"].entropy_term)
        return elbo


class DeviceIWAE_ELBO(RenyiELBO):
    """The importance-weighted bound (IWAE; Pyro's :class:`~pyro.infer.RenyiELBO`
    with ``alpha=0``) whose loss is a 0-dim device tensor, never read on the host.

    For each data point of the plates the model's sites share, its K =
    ``num_particles`` draws give log-weights ``log w_k = log p(x, z_k) - log q(z_k
    | x)``, and the bound is ``log mean_k w_k``, summed over data points: the ELBO
    at K = 1, tighter as K grows. Its gradient is the exact gradient of that sum,
    which needs every guide site reparameterized (Pyro's own gradient for a site
    without ``rsample`` is biased).
    """

    def __init__(self, num_particles: int = 2, **options: Any) -> None:
        super().__init__(alpha=0.0, num_particles=num_particles, **options)

    def differentiable_loss(
        self, model: Any, guide: Any, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Negative importance-weighted bound (0-dim)."""
        particles = []
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            # Dims of plates some site depends on across data points are summed
            # into each particle's weight, as in Pyro's RenyiELBO; the others
            # (a plate of independent data points) keep a weight per point.
            dims = get_dependent_plate_dims(model_trace.nodes.values())
            log_w: Any = 0.0
            for site in model_trace.nodes.values():
                if site["type"] == "sample":
                    log_w = log_w + _sum_dims(site["log_prob"], dims)
            for site in guide_trace.nodes.values():
                if site["type"] == "sample":
                    check_fully_reparametrized(site)
                    log_w = log_w - _sum_dims(site["log_prob"], dims)
            particles.append(log_w)
        if not any(torch.is_tensor(p) for p in particles):  # nothing to weigh
            return torch.zeros(())
        vectorized = self.vectorize_particles and self.num_particles > 1
        log_w = particles[0] if vectorized else torch.stack(particles)
        bound = torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)
        return -bound.sum()


def _sum_dims(value: Any, dims: list[int]) -> Any:
    # Pyro's torch_sum, where a site that does not apply is the number 0.
    return torch_sum(value, dims) if torch.is_tensor(value) else value


def _sum(term: Any) -> Any:
    # Pyro leaves a term that does not apply as the number 0, not a tensor.
    return term.sum() if torch.is_tensor(term) else term
