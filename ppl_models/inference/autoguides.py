"""Pyro's autoguides with their parameters kept in the guide module.

Each is Pyro's class with the :class:`~ppl_models.inference.params.LocalParams`
mixin, so a fit's guide is a plain module (its state dict is the checkpoint) and a
user's ``SVI(model, guide, pyro.optim.Adam(...), Trace_ELBO())`` trains it without
the param store ever seeing it. Any model of the zoo that wants an automatic guide
builds it from here.
"""

from __future__ import annotations

from typing import Any

from pyro.distributions import constraints
from pyro.infer.autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal
from pyro.nn import PyroParam

from ppl_models.inference.params import LocalParams


class LocalAutoDelta(LocalParams, AutoDelta):
    """Pyro's ``AutoDelta`` (MAP): its point masses kept in the module."""


class LocalAutoNormal(LocalParams, AutoNormal):
    """Pyro's ``AutoNormal`` (mean-field): its locations and scales kept in the
    module."""


class LocalAutoMultivariateNormal(LocalParams, AutoMultivariateNormal):
    """Pyro's ``AutoMultivariateNormal`` (full-rank): its location and Cholesky
    factor kept in the module."""

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        # Pyro makes loc a bare nn.Parameter, whose param message in module-local
        # mode lacks the unconstrained() that a user's SVI with pyro.optim reads;
        # a PyroParam on the real line is the same value with it.
        self.loc = PyroParam(self.loc.detach(), constraints.real)
