"""Probabilistic PCA: the acceptance numbers of the default experiment, the closed
form, user data of any shape, and bad input."""

from __future__ import annotations

import dataclasses
import math
import re
import time

import numpy as np
import pytest
import torch

from ppl_models.device import resolve_device
from ppl_models.errors import DataError, UsageError
from ppl_models.models.ppca import (
    PPCA,
    closed_form_w,
    fit_ppca,
    make_guide,
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
    fit = fit_ppca(data, inference="meanfield", noise_scale=0.5, steps=300,
                   device="cpu", progress=False)  # fmt: skip
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
    assert w.shape == (3, 2)  # (data_dim, latent_dim)
    # W W^T is rotation invariant and equals the true W W^T in the limit.
    assert torch.allclose(w @ w.T, w_true @ w_true.T, atol=0.05)


def test_subspace_cosine_of_a_subspace_with_itself_is_one_not_more():
    # Rounding puts the singular values a hair above 1 for some bases (for seed 12
    # without the clamp: 1.0000000000000002); a cosine never exceeds 1.
    for seed in range(30):
        a = torch.randn(5, 2, generator=torch.Generator().manual_seed(seed))
        assert subspace_cosine(a, a) <= 1.0


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
    fit = fit_ppca(inference="meanfield", seed=0, device="cpu", progress=False)
    fit.config = dataclasses.replace(fit.config, ppc_samples=20)
    summary = fit.criticize(tmp_path)
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


def test_default_experiment_has_the_documented_size(default_fit):
    # N=5000, D=2, K=1, sigma=0.5 and 1000 steps unless the caller says otherwise.
    assert default_fit.x.shape == (2, 5000)
    assert default_fit.losses.shape == (1000,)
    assert default_fit.w.shape == (2, 1)
    assert float(default_fit.model.noise_scale) == 0.5


def test_defaults_fit_map_with_seed_0_and_show_progress_when_asked(capsys):
    start = time.perf_counter()
    fit = fit_ppca(num_datapoints=50, steps=1, progress=True)
    elapsed = time.perf_counter() - start
    assert "ppca map" in capsys.readouterr().err  # the progress bar names the fit
    explicit = fit_ppca(
        num_datapoints=50,
        steps=1,
        inference="map",
        lr=0.05,
        seed=0,
        device="cpu",
        progress=False,
    )
    assert fit.inference == "map"
    assert fit.x.device == resolve_device("auto")
    assert torch.equal(fit.x.cpu(), explicit.x)
    assert torch.equal(fit.losses.cpu(), explicit.losses)  # a one-step fit works
    assert torch.allclose(fit.w.cpu(), explicit.w)  # the same learning rate
    assert 0.0 < fit.fit_seconds <= elapsed


def test_posterior_predictive_check_draws_500_replicates_by_default(monkeypatch):
    # Count the replicates asked for, drawing only two of them to keep this fast.
    from ppl_models.models.ppca import fit as fit_module

    asked, real_replicate = [], fit_module.replicate

    def replicate(*args, num_samples):
        asked.append(num_samples)
        return real_replicate(*args, num_samples=2)

    monkeypatch.setattr(fit_module, "replicate", replicate)
    fit = fit_ppca(num_datapoints=20, steps=1, device="cpu", progress=False)
    checks = fit.posterior_predictive_check()
    assert asked == [500]
    assert all(c.replicated.shape == (2,) for c in checks.values())


def test_closed_form_has_zero_length_axes_where_the_data_vary_less_than_the_noise():
    # Second moments 4 and 0.01 along the coordinate axes, sigma = 0.5: the first
    # axis has length sqrt(4 - 0.25), the second would need a negative variance.
    x = torch.tensor([[2.0, -2.0, 0.0, 0.0], [0.0, 0.0, 0.1, -0.1]]) * math.sqrt(2)
    w = closed_form_w(x, latent_dim=2, noise_scale=0.5)
    assert torch.isfinite(w).all()
    assert w[:, 0].abs().tolist() == pytest.approx([math.sqrt(3.75), 0.0], abs=1e-6)
    assert w[:, 1].tolist() == [0.0, 0.0]


def test_log_joint_is_the_documented_generative_story():
    # w ~ Normal(0, 2), z ~ Normal(0, 1), x ~ Normal(w @ z, 0.5) with the defaults.
    from pyro import poutine

    torch.manual_seed(0)
    model = PPCA(3, 2)
    w, z, x = torch.randn(3, 2), torch.randn(2, 4), torch.randn(3, 4)
    conditioned = poutine.condition(model, data={"w": w, "z": z})
    trace = poutine.trace(conditioned).get_trace(x)
    assert trace.nodes["z"]["value"].shape == (2, 4)
    trace.compute_log_prob()

    def normal_logpdf(value, loc, scale):
        return (
            -0.5 * ((value - loc) / scale) ** 2
            - math.log(scale * math.sqrt(2 * math.pi))
        ).sum()

    expected = {
        "w": normal_logpdf(w, 0.0, 2.0),
        "z": normal_logpdf(z, 0.0, 1.0),
        "x": normal_logpdf(x, w @ z, 0.5),
    }
    for site, value in expected.items():
        assert float(trace.nodes[site]["log_prob_sum"]) == pytest.approx(
            float(value), rel=1e-5
        ), site


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"data_dim": 0}, "data_dim must be a positive integer"),
        ({"latent_dim": 0}, "latent_dim must be a positive integer"),
        ({"noise_scale": 0.0}, "noise_scale must be a positive"),
        ({"prior_w_scale": -1.0}, "prior_w_scale must be a positive"),
    ],
)
def test_model_constructor_names_the_bad_argument(kwargs, message):
    with pytest.raises(UsageError, match=message):
        PPCA(**{"data_dim": 2, "latent_dim": 1, **kwargs})


@pytest.mark.parametrize(
    "args,error,message",
    [
        ((), UsageError, "^PPCA needs either data x or num_datapoints$"),
        ((None, 0), UsageError, "num_datapoints must be a positive integer"),
        ((torch.zeros(2, 10, 1),), DataError, r"got \(2, 10, 1\)"),
        ((torch.zeros(2, 10), 5), DataError, "num_datapoints=5 but the data has 10"),
    ],
)
def test_model_call_names_what_is_missing_or_inconsistent(args, error, message):
    with pytest.raises(error, match=message):
        PPCA(2, 1)(*args)


def test_make_guide_rejects_an_unknown_method_by_name():
    with pytest.raises(UsageError, match="unknown inference 'nuts' for ppca"):
        make_guide(PPCA(2, 1), "nuts")


def test_user_data_is_fitted_on_the_requested_device():
    data = np.random.default_rng(1).normal(size=(30, 2))
    fit = fit_ppca(data, steps=1, device=TEST_DEVICE, progress=False)
    assert fit.x.device == resolve_device(TEST_DEVICE)
    assert fit.w.device == resolve_device(TEST_DEVICE)
    assert torch.allclose(fit.x.cpu(), torch.tensor(data.T, dtype=torch.float32))


def test_a_compile_mode_compiles_the_elbo_with_that_mode(monkeypatch):
    # Record what would be compiled instead of paying for a compilation here
    # (tests/inference/test_compiled.py compares compiled and plain fits).
    from ppl_models.inference import svi

    modes = []

    def compiled_objective(objective, mode):
        modes.append(mode)
        return objective

    monkeypatch.setattr(svi, "CompiledObjective", compiled_objective)
    fit_ppca(num_datapoints=10, steps=1, compile="max-autotune", device="cpu")
    assert modes == ["max-autotune"]


def test_meanfield_guide_starts_with_narrow_posteriors():
    # Initial scales of 0.1 keep the first draws of w and z near their means.
    from ppl_models.inference import initialize_guide

    model = PPCA(3, 2)
    guide = make_guide(model, "meanfield")
    initialize_guide(guide, torch.randn(3, 5))
    assert torch.allclose(guide.scales.w, torch.full((3, 2), 0.1))
    assert torch.allclose(guide.scales.z, torch.full((2, 5), 0.1))


def test_the_eigenvalue_statistic_is_the_largest_in_any_dimension():
    from ppl_models.models.ppca import ppca_statistics

    x = torch.diag(torch.tensor([1.0, 3.0, 2.0])) @ torch.randn(3, 4000)
    statistic = ppca_statistics(3)["largest eigenvalue of cov(x)"]
    assert float(statistic(x)) == pytest.approx(
        float(torch.linalg.eigvalsh(torch.cov(x)).max())
    )
    assert float(statistic(x)) > 8.0  # the variance along the scaled-by-3 axis


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "0"])
def test_a_seed_numpy_cannot_take_is_refused_by_name(seed):
    from ppl_models.models.vae import fit_vae

    message = f"^seed must be an integer from 0 to 4294967295, got {seed!r}$"
    with pytest.raises(UsageError, match=re.escape(message[1:-1])):
        fit_ppca(seed=seed, steps=1, num_datapoints=10, device="cpu")
    with pytest.raises(UsageError, match=re.escape(message[1:-1])):
        fit_vae("digits", seed=seed, epochs=1, device="cpu")


def test_the_largest_seed_is_taken():
    fit = fit_ppca(seed=2**32 - 1, steps=1, num_datapoints=10, device="cpu")
    assert fit.losses.shape == (1,)


def test_fit_ppca_has_the_command_lines_defaults():
    # `fit_ppca()` and `ppl-models fit ppca` are the same experiment by default.
    import dataclasses
    import inspect

    from ppl_models.models.ppca.config import PPCARunConfig

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(fit_ppca).parameters.items()
    }
    config = PPCARunConfig()
    # checkpoint_every means something only with a checkpoint_path to write.
    shared = [
        f.name
        for f in dataclasses.fields(config)
        if f.name in defaults and f.name != "checkpoint_every"
    ]
    assert len(shared) >= 8
    for name in shared:
        assert defaults[name] == getattr(config, name), name
    assert defaults["device"] == "auto"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(inference="laplace"), "unknown inference 'laplace': expected one of "),
        (dict(checkpoint_every=0), "checkpoint_every must be a positive integer, "),
        (dict(num_datapoints=0), "num_datapoints must be a positive integer, "),
        (dict(data=np.zeros((0, 2))), "data is empty: it has no rows"),
    ],
)
def test_fit_ppca_names_the_argument_it_refuses(arguments, message):
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        fit_ppca(**{"steps": 1, "num_datapoints": 10, "device": "cpu", **arguments})


def test_each_site_sits_in_the_named_plates_of_its_math():
    # A Pyro user conditions, subsamples and reads traces by these names and sizes.
    from pyro import poutine

    model = PPCA(data_dim=3, latent_dim=2)
    trace = poutine.trace(model).get_trace(torch.randn(3, 5))
    plates = {
        name: {
            (frame.name, frame.size, frame.dim) for frame in site["cond_indep_stack"]
        }
        for name, site in trace.nodes.items()
        if name in ("w", "z", "x")
    }
    assert plates == {
        "w": set(),
        "z": {("latent_dims", 2, -2), ("data", 5, -1)},
        "x": {("data_dims", 3, -2), ("data", 5, -1)},
    }


def test_the_model_is_the_lectures_by_default():
    # Known noise 0.5, prior scale 2 on w, no mean and z sampled: the lecture's.
    model = PPCA(3, 1)
    assert not (model.learns_mean or model.learns_noise or model.collapsed)
    assert (float(model.noise_scale), float(model.prior_w_scale)) == (0.5, 2.0)
    assert torch.equal(model.mu, torch.zeros(3, 1))
    assert sorted(model.state_dict()) == ["noise_scale", "one", "prior_w_scale", "zero"]
    message = (
        "^latent_dim=3 must be below the data's 3 dimensions to learn the noise "
        "scale; give a noise scale$"
    )
    with pytest.raises(UsageError, match=message):
        PPCA(3, 3, None)
    learned = PPCA(3, 1, None, learn_mean=True)
    assert learned.learns_mean and learned.learns_noise
    assert sorted(learned.state_dict()) == [
        "mu_unconstrained", "noise_scale_unconstrained", "one", "prior_w_scale", "zero"
    ]  # fmt: skip


def test_a_learned_mean_and_noise_start_at_0_and_1_then_from_the_data():
    model = PPCA(2, 1, None, learn_mean=True)
    assert torch.equal(model.mu, torch.zeros(2, 1))
    assert model.noise_scale.item() == pytest.approx(1.0)
    x = torch.tensor([[1.0, 3.0], [2.0, 6.0]])  # (D, N): mean (2, 4)
    model.start_from(x)
    assert torch.allclose(model.mu, torch.tensor([[2.0], [4.0]]))
    # all variance as noise: deviations 1, 1, 2, 2, so a root mean square of 2.5
    assert model.noise_scale.item() == pytest.approx(2.5**0.5)
    fixed = PPCA(2, 1)  # nothing learned: nothing moves
    fixed.start_from(x)
    assert torch.equal(fixed.mu, torch.zeros(2, 1)) and float(fixed.noise_scale) == 0.5


def test_closed_form_w_is_about_zero_as_the_lectures_model_has_no_mean():
    # Points at (3, 0) and (5, 0): a second moment of 17 along x1 (a variance of 1
    # about their mean), so with sigma = 1 the axis has length sqrt(17 - 1) = 4.
    x = torch.tensor([[3.0, 5.0], [0.0, 0.0]])
    w = closed_form_w(x, latent_dim=1, noise_scale=1.0)
    assert w.abs().flatten().tolist() == pytest.approx([4.0, 0.0])
