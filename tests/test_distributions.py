"""The numerically safe relaxed one-hot categoricals: finite densities and draws on
the simplex at low temperatures, and hard one-hot draws from the straight-through
version."""

from __future__ import annotations

import torch

from ppl_models.distributions import RelaxedOneHot, StraightThrough


def test_relaxed_draws_have_finite_densities_at_low_temperatures():
    # A confident q at tau = 0.1 underflows to exact zeros in Pyro's own draws.
    logits = torch.tensor([0.0, -30.0, -60.0]).expand(100, 3).requires_grad_()
    for relaxed in (RelaxedOneHot, StraightThrough):
        q = relaxed(torch.tensor(0.1), logits=logits)
        z = q.rsample()
        q.log_prob(z).sum().backward()
        assert torch.isfinite(q.log_prob(z)).all() and torch.isfinite(logits.grad).all()
        assert q.support.check(getattr(z, "_unquantize", z)).all()
    hard = StraightThrough(torch.tensor(0.5), logits=torch.randn(5, 4)).rsample()
    assert set(hard.unique().tolist()) == {0.0, 1.0} and (hard.sum(-1) == 1).all()
