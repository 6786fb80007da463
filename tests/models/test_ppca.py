"""Probabilistic PCA: the acceptance numbers of the default experiment, the closed
form, user data of any shape, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppl_models.errors import DataError, UsageError
from ppl_models.models.ppca import (
    PPCA,
    closed_form_w,
    fit_ppca,
    simulate,
    subspace_cosine,
)
from tests.conftest import TEST_DEVICE


@pytest.fixture(scope="module", params=["map", "meanfield"])
def default_fit(request):
    """The default experiment: N=5000, D=2, K=1, sigma=0.5, seed 0."""
    return fit_ppca(inference=request.param, seed=0, device=TEST_DEVICE, progress=False)


def test_default_experiment_recovers_the_axes(default_fit):
    cosines = default_fit.axis_cosines()
    assert cosines["axis_cosine_true"] >= 0.999
    assert cosines["axis_cosine_closed_form"] >= 0.999


def test_default_experiment_replay_matches_observed_covariance(default_fit):
    generated = default_fit.replay()
    assert generated.shape == default_fit.x.shape
    assert default_fit.replay_cov_rel_error(generated) <= 0.15


def test_loss_improves_from_its_start(default_fit):
    losses = default_fit.losses
    assert torch.isfinite(losses).all()
    assert losses[-100:].mean() < 0.5 * losses[:10].mean()


def test_meanfield_scales_are_small_and_positive(default_fit):
    if default_fit.inference != "meanfield":
        assert default_fit.w_scale is None
        return
    scale = default_fit.w_scale
    assert scale.shape == (2, 1)
    assert (scale > 0).all() and (scale < 0.1).all()


def test_ppc_reports_p_values_for_variances_and_top_eigenvalue(default_fit):
    checks = default_fit.posterior_predictive_check(num_samples=50)
    assert set(checks) == {
        "variance of x1",
        "variance of x2",
        "largest eigenvalue of cov(x)",
    }
    for check in checks.values():
        assert 0.0 <= check.p_value <= 1.0
        assert check.replicated.shape == (50,)
    observed_var = float(default_fit.x[0].var())
    assert checks["variance of x1"].observed == pytest.approx(observed_var, rel=1e-5)


def test_ppc_flags_variance_the_model_cannot_explain():
    # One axis (sd 3) and noise of sd 2 in the two other directions, fitted with
    # K = 1 and the noise fixed at 0.5: the axis explains x1, but replicated x2 and x3
    # vary far too little, and only those checks are extreme.
    rng = np.random.default_rng(0)
    data = rng.normal(size=(1000, 3)) * np.array([3.0, 2.0, 2.0])
    fit = fit_ppca(data, inference="meanfield", steps=300, device="cpu", progress=False)
    checks = fit.posterior_predictive_check(num_samples=50)
    assert checks["variance of x2"].p_value == 0.0
    assert checks["variance of x3"].p_value == 0.0
    assert 0.05 < checks["variance of x1"].p_value < 0.95
    assert checks["variance of x2"].observed == pytest.approx(
        float(np.var(data[:, 1], ddof=1)), rel=1e-5
    )
    assert float(checks["variance of x2"].replicated.max()) < 1.0


def test_closed_form_matches_the_eigendecomposition():
    torch.manual_seed(1)
    w_true = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    z = torch.randn(2, 200_000)
    x = w_true @ z + 0.3 * torch.randn(3, 200_000)
    w = closed_form_w(x, latent_dim=2, noise_scale=0.3)
    # W W^T is rotation invariant and equals the true W W^T in the limit.
    assert torch.allclose(w @ w.T, w_true @ w_true.T, atol=0.05)


def test_subspace_cosine_ignores_sign_and_rotation():
    a = torch.randn(5, 2, dtype=torch.float64)
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    assert subspace_cosine(a, -a @ rotation) == pytest.approx(1.0, abs=1e-9)
    b = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))[0]
    assert subspace_cosine(b[:, :2], b[:, 2:4]) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("data_dim,latent_dim", [(5, 2), (3, 3), (1, 1)])
def test_any_dimensions_fit(data_dim, latent_dim):
    fit = fit_ppca(
        num_datapoints=300,
        data_dim=data_dim,
        latent_dim=latent_dim,
        inference="meanfield",
        steps=20,
        device="cpu",
        progress=False,
    )
    assert fit.w.shape == (data_dim, latent_dim)
    assert fit.w_scale.shape == (data_dim, latent_dim)
    assert fit.x.shape == (data_dim, 300)
    assert torch.isfinite(fit.losses).all()


def test_user_supplied_array_is_fitted_in_n_by_d_layout():
    rng = np.random.default_rng(0)
    axis = np.array([[1.0], [2.0], [-1.0]])
    data = (axis @ rng.normal(size=(1, 2000))).T + 0.1 * rng.normal(size=(2000, 3))
    fit = fit_ppca(data, inference="map", steps=400, device="cpu", progress=False)
    assert fit.w_true is None
    assert fit.x.shape == (3, 2000)
    assert subspace_cosine(fit.w, torch.tensor(axis)) >= 0.999


def test_simulation_is_reproducible_with_a_seed():
    torch.manual_seed(3)
    x1, w1, _ = simulate(PPCA(2, 1), 10)
    torch.manual_seed(3)
    x2, w2, _ = simulate(PPCA(2, 1), 10)
    assert torch.equal(x1, x2) and torch.equal(w1, w2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"data": np.full((10, 2), np.nan)}, "NaN"),
        ({"data": np.ones((10,))}, "shape (N, data_dim)"),
        ({"data": np.ones((0, 2))}, "empty"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"inference": "nuts"}, "inference"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"num_datapoints": 0}, "num_datapoints"),
        ({"noise_scale": 0.0}, "noise_scale"),
    ],
)
def test_bad_input_names_the_problem(kwargs, message):
    with pytest.raises(
        (UsageError, DataError), match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        fit_ppca(device="cpu", progress=False, **{"steps": 5, **kwargs})


def test_model_rejects_data_in_the_wrong_layout():
    with pytest.raises(DataError, match="data_dim=2"):
        PPCA(2, 1)(torch.zeros(3, 10))


def test_criticism_does_not_reuse_the_simulation_stream(tmp_path):
    # Replaying with the stream that simulated the data would correlate the replay
    # with the data; the run's criticism uses a derived seed instead.
    from ppl_models.models.ppca.experiment import criticize_fit

    fit = fit_ppca(inference="meanfield", seed=0, device="cpu", progress=False)
    summary = criticize_fit(fit, tmp_path, ppc_samples=20, seed=0)
    assert summary["replay_cov_rel_error"] <= 0.15


@pytest.mark.parametrize("inference", ["map", "meanfield"])
def test_smoke_cases_name_the_latent_sites_and_the_elbo_of_their_method(inference):
    # The registry's shared tests compare model and guide shapes at latent_sites and
    # fit with case.elbo(): both must be the ones this inference method documents.
    from pyro import poutine
    from pyro.infer import TraceMeanField_ELBO

    from ppl_models.models.ppca import PPCASpec

    (case,) = [
        c for c in PPCASpec.smoke_cases(torch.device("cpu")) if c.inference == inference
    ]
    trace = poutine.trace(case.model).get_trace(*case.fit_args)
    latent = {
        name
        for name, node in trace.nodes.items()
        if node["type"] == "sample"
        and not node["is_observed"]
        and not poutine.util.site_is_subsample(node)
    }
    assert set(case.latent_sites) == latent == {"w", "z"}
    assert isinstance(case.elbo(), TraceMeanField_ELBO) == (inference == "meanfield")
