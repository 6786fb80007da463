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


def fixed_guide(x=None, n=None):
    # a posterior far from the prior's centre, so replicates show which one they used
    pyro.sample("loc", dist.Normal(torch.tensor(-50.0), 0.1))


def test_replicates_draw_the_latents_from_the_guide_not_the_prior():
    pyro.set_rng_seed(0)
    replicated = replicate(location_model, fixed_guide, (None, 100), num_samples=20)
    assert replicated.shape == (20, 100)
    # each replicate's mean is its own loc draw (sd 0.1) plus noise (sd 0.1)
    assert (replicated.mean(dim=1) + 50.0).abs().max() < 1.0


def test_parallel_replicates_are_drawn_at_most_chunk_size_at_a_time():
    # The model runs once per chunk, vectorized over its replicates: 3 + 3 + 1.
    batches = []

    def counting_model(x=None, n=None):
        loc = pyro.sample("loc", dist.Normal(torch.zeros(()), 10.0))
        if loc.dim():
            batches.append(loc.shape[0])
        with pyro.plate("data", n):
            return pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    replicated = replicate(
        counting_model,
        fixed_guide,
        (None, 5),
        num_samples=7,
        chunk_size=3,
        parallel=True,
    )
    assert replicated.shape == (7, 5)
    assert batches == [3, 3, 1]


def test_by_default_replicates_run_one_at_a_time_so_any_model_works():
    # A model that reads its latent as a Python number cannot be vectorized.
    def scalar_model(x=None, n=None):
        loc = pyro.sample("loc", dist.Normal(torch.zeros(()), 10.0))
        with pyro.plate("data", n):
            return pyro.sample("x", dist.Normal(loc, 1.0 + abs(float(loc))), obs=x)

    replicated = replicate(scalar_model, fixed_guide, (None, 4), num_samples=5)
    assert replicated.shape == (5, 4)


def test_replicate_returns_the_site_asked_for():
    def two_site_model(x=None, n=None):
        loc = pyro.sample("loc", dist.Normal(torch.zeros(()), 10.0))
        with pyro.plate("data", n):
            y = pyro.sample("y", dist.Normal(loc, 1.0))
            return pyro.sample("x", dist.Normal(y + 1000.0, 1.0), obs=x)

    pyro.set_rng_seed(0)
    y = replicate(two_site_model, fixed_guide, (None, 50), num_samples=3, site="y")
    assert (y.mean(dim=1) + 50.0).abs().max() < 1.0  # y, not x near +950


def test_check_results_hold_cpu_values_and_summarize_to_observed_and_p_value(device):
    observed = torch.tensor([1.0, 3.0], device=device)
    replicated = torch.tensor([[0.0, 1.0], [5.0, 5.0], [2.0, 2.0]], device=device)
    checks = posterior_predictive_check(
        observed, replicated, {"mean": lambda x: x.mean(), "max": lambda x: x.max()}
    )
    assert list(checks) == ["mean", "max"]
    mean = checks["mean"]
    assert mean.name == "mean"
    assert mean.replicated.device.type == "cpu"
    assert mean.replicated.tolist() == [0.5, 5.0, 2.0]
    # means 0.5, 5, 2 against 2: one above, one tie -> (1 + 1/2) / 3
    assert mean.as_dict() == {"observed": 2.0, "p_value": 0.5}
    assert checks["max"].as_dict() == {"observed": 3.0, "p_value": pytest.approx(1 / 3)}


def test_replay_guide_runs_the_guide_on_its_own_arguments():
    # The guide reads the data (an encoder would); the model run generates it.
    def data_guide(x, n):
        pyro.sample("loc", dist.Normal(x.mean(), 0.01))

    data = torch.full((10,), 7.0)
    trace = replay_guide(location_model, data_guide, (None, 200), (data, 10))
    assert abs(float(trace.nodes["loc"]["value"]) - 7.0) < 0.1
    assert trace.nodes["x"]["value"].shape == (200,)
