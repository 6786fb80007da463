"""Replay and posterior predictive checks on small models whose answers are known."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoNormal

from ppl_models.criticism import (
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


def test_p_values_count_replicates_at_or_above_the_observed_value():
    observed = torch.tensor([0.0, 1.0])
    replicated = torch.tensor([[0.0, 0.0], [0.0, 2.0], [0.0, 3.0], [0.0, 0.5]])
    checks = posterior_predictive_check(
        observed, replicated, {"max": lambda x: x.max()}
    )
    assert checks["max"].observed == 1.0
    assert checks["max"].p_value == pytest.approx(0.5)
    assert checks["max"].replicated.tolist() == [0.0, 2.0, 3.0, 0.5]


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
