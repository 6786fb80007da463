"""Replay and posterior predictive checks on small models whose answers are known."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoNormal

from ppl_models.criticism import (
    exceedance,
    posterior_predictive_check,
    replay_guide,
    replay_latents,
    replicate,
)


def location_model(x=None, n=None):
    n = n if x is None else x.shape[0]
    loc = pyro.sample("loc", dist.Normal(torch.zeros(()), 10.0))
    with pyro.plate("data", n):
        return pyro.sample("x", dist.Normal(loc, 1.0), obs=x)


def test_replay_latents_fixes_the_named_sites_and_generates_the_rest():
    trace = replay_latents(location_model, {"loc": torch.tensor(100.0)}, None, 500)
    assert trace.nodes["loc"]["value"] == 100.0
    generated = trace.nodes["x"]["value"]
    assert generated.shape == (500,)
    assert abs(float(generated.mean()) - 100.0) < 0.5


def test_replay_guide_uses_the_guide_draw():
    guide = AutoNormal(location_model, init_loc_fn=lambda site: torch.tensor(-50.0))
    guide(None, 3)
    trace = replay_guide(location_model, guide, (None, 1000))
    assert abs(float(trace.nodes["x"]["value"].mean()) + 50.0) < 2.0


def test_p_values_count_replicates_above_the_observed_value():
    observed = torch.tensor([0.0, 1.0])
    replicated = torch.tensor([[0.0, 0.0], [0.0, 2.0], [0.0, 3.0], [0.0, 0.5]])
    checks = posterior_predictive_check(
        observed, replicated, {"max": lambda x: x.max()}
    )
    assert checks["max"].observed == 1.0
    assert checks["max"].p_value == pytest.approx(0.5)
    assert checks["max"].replicated.tolist() == [0.0, 2.0, 3.0, 0.5]


def test_ties_count_half_in_the_mid_p_value():
    # Statistic values 1, 2, 2, 3, 3 against an observed 2: two replicates above and
    # two ties, so p = (2 + 2/2) / 5. ">=" would give 0.8, ">" 0.4.
    replicated = torch.tensor([1.0, 2.0, 2.0, 3.0, 3.0]).unsqueeze(-1)
    observed = torch.tensor([2.0])
    checks = posterior_predictive_check(observed, replicated, {"value": lambda x: x[0]})
    assert checks["value"].p_value == pytest.approx(0.6)
    assert exceedance(replicated[:, 0], observed[0]).tolist() == [0, 0.5, 0.5, 1, 1]


def test_a_statistic_that_always_ties_is_not_flagged():
    # A pixel blank in the data and in every replicate: all ties, so p = 1/2.
    replicated = torch.zeros(7, 3)
    checks = posterior_predictive_check(
        torch.zeros(3), replicated, {"ink": lambda x: x.sum()}
    )
    assert checks["ink"].p_value == 0.5


def test_a_misspecified_model_fails_its_check():
    # Data with spread 5 fitted by a model whose noise is fixed at 1: the location is
    # found, but replicated data are far too narrow, and the variance check says so.
    pyro.set_rng_seed(0)
    x = 5.0 * torch.randn(500)
    guide = AutoNormal(location_model)
    guide(x)
    replicated = replicate(
        location_model, guide, (None, 500), num_samples=200, chunk_size=64
    )
    assert replicated.shape == (200, 500)
    checks = posterior_predictive_check(
        x, replicated, {"variance": lambda v: v.var(), "mean": lambda v: v.mean()}
    )
    assert checks["variance"].p_value == 0.0
