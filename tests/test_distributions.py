"""The numerically safe relaxed one-hot categoricals: finite densities and draws on
the simplex at low temperatures, and hard one-hot draws from the straight-through
version, and their KL, that of their categoricals."""

from __future__ import annotations

import pyro.distributions
import pytest
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


def test_their_kl_is_that_of_their_categoricals_and_pyros_own_get_none():
    q_logits, p_logits = torch.randn(6, 4), torch.randn(6, 4)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=q_logits),
        torch.distributions.Categorical(logits=p_logits),
    )
    for relaxed in (RelaxedOneHot, StraightThrough):
        tau = torch.tensor(0.7)
        q, p = relaxed(tau, logits=q_logits), relaxed(tau, logits=p_logits)
        torch.testing.assert_close(torch.distributions.kl_divergence(q, p), expected)
        # as TraceMeanField_ELBO meets them, batched into events
        kl = torch.distributions.kl_divergence(q.to_event(1), p.to_event(1))
        torch.testing.assert_close(kl, expected.sum())
    own = pyro.distributions.RelaxedOneHotCategorical(tau, logits=q_logits)
    with pytest.raises(NotImplementedError):
        torch.distributions.kl_divergence(own, own)


def test_draws_lie_on_the_simplex_and_straight_through_has_the_relaxed_gradient():
    logits = torch.randn(50, 4, requires_grad=True)
    weights = torch.randn(50, 4)
    tau = torch.tensor(1.0)
    torch.manual_seed(0)
    soft = RelaxedOneHot(tau, logits=logits).rsample()
    torch.testing.assert_close(soft.sum(-1), torch.ones(50))
    (expected,) = torch.autograd.grad((soft * weights).sum(), logits)
    torch.manual_seed(0)  # the same noise: the hard code of the same soft draw
    hard = StraightThrough(tau, logits=logits).rsample()
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))
    (got,) = torch.autograd.grad((hard * weights).sum(), logits)
    torch.testing.assert_close(got, expected)
