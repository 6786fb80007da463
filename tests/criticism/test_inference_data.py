"""Every registered model's fit as ArviZ's InferenceData: the groups ArviZ's
conventions name, with each site's own shape, read by ArviZ's summary and LOO, and
written by ``ppl-models export``. Skipped without the ``arviz`` extra.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from matplotlib import pyplot
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal

import ppl_models
from ppl_models import get_model, list_models
from ppl_models.cli import main
from ppl_models.criticism.inference_data import (
    conditional_log_likelihood,
    to_inference_data,
)
from ppl_models.errors import UsageError
from ppl_models.models.ppca import fit_ppca
from tests.conftest import block_imports

arviz_base = pytest.importorskip(
    "arviz_base", reason='needs the arviz extra: pip install "ppl_models[arviz]"'
)
arviz_stats = pytest.importorskip("arviz_stats", reason="needs the arviz extra")
xarray = pytest.importorskip("xarray", reason="needs the arviz extra")


def sizes(data, group: str, site: str) -> dict[str, int]:
    """The named dimensions of ``site`` in ``group``, with their sizes."""
    return dict(data[group][site].sizes)


def arviz_plots_or_skip():
    """ArviZ's plots, imported as the README tells a user with matplotlib 3.11."""
    # arviz-plots 0.8.0 reads matplotlib.style.core at import, a module matplotlib
    # 3.11 no longer imports itself (arviz-devs/arviz-plots#500, fixed upstream
    # after 0.8.0): importing it first is the workaround.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 3.11
        with contextlib.suppress(ImportError):
            importlib.import_module("matplotlib.style.core")
    return pytest.importorskip("arviz_plots", reason="needs the arviz extra")


@pytest.mark.parametrize("name", list_models())
def test_export_writes_what_arviz_summarises_and_checks(name, capsys, tmp_path):
    run = tmp_path / "run"
    argv = ["fit", name, *get_model(name).smoke_fit_args(), "--device", "cpu"]
    assert main([*argv, "--out", str(run)]) == 0
    assert main(["export", str(run), "--samples", "30", "--device", "cpu"]) == 0
    assert "inference data written to" in capsys.readouterr().out
    data = xarray.open_datatree(run / "inference_data.nc", engine="h5netcdf")
    assert {"posterior", "posterior_predictive", "observed_data"} <= set(data.children)
    assert data["posterior"].sizes["chain"] == 1
    assert data["posterior"].sizes["draw"] == 30
    observed = data["observed_data"]
    replicated = data["posterior_predictive"]
    for site in observed.data_vars:
        # Pyro's plate padding removed: each draw has the observed site's shape.
        assert replicated[site].shape == (1, 30, *observed[site].shape)
    assert not arviz_stats.summary(data, kind="stats").empty
    if "log_likelihood" in data.children:
        assert np.isfinite(arviz_stats.loo(data).elpd)
    plots = arviz_plots_or_skip().plot_ppc_dist(data, num_samples=30)
    for group in ("predictive_dist", "observed_dist"):  # each site's curves
        assert set(plots.viz[group].data_vars) == set(observed.data_vars)
    pyplot.close(plots.viz["figure"].item())


def test_ppca_meanfield_log_likelihood_integrates_z_out():
    fit = fit_ppca(inference="meanfield", num_datapoints=200, steps=200,
                   device="cpu", progress=False)  # fmt: skip
    data = fit.to_inference_data()  # 200 draws by default
    assert sizes(data, "posterior", "w") == {
        "chain": 1, "draw": 200, "feature": 2, "axis": 1
    }  # fmt: skip
    assert "w_unconstrained" not in data["posterior"]  # AutoNormal's helper site
    assert sizes(data, "posterior", "z") == {
        "chain": 1, "draw": 200, "axis": 1, "point": 200
    }  # fmt: skip
    assert sizes(data, "posterior_predictive", "x") == {
        "chain": 1, "draw": 200, "feature": 2, "point": 200
    }  # fmt: skip
    w = torch.from_numpy(data["posterior"]["w"].values[0, 3])
    marginal = dist.LowRankMultivariateNormal(torch.zeros(2), w, torch.full((2,), 0.25))
    expected = marginal.log_prob(fit.x.T).numpy()
    assert np.allclose(data["log_likelihood"]["x"].values[0, 3], expected, rtol=1e-5)
    loo = arviz_stats.loo(data)
    assert (loo.pareto_k.values < 0.7).all()
    # Drawn from the run's seed: the same data again, the caller's stream kept.
    torch.manual_seed(5)
    before = torch.rand(1)
    again = fit.to_inference_data(num_samples=200)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(1), before)
    assert np.array_equal(again["posterior"]["w"].values, data["posterior"]["w"].values)


def test_a_point_estimate_has_no_log_likelihood_to_leave_out():
    fit = fit_ppca(inference="collapsed", num_datapoints=100, steps=20,
                   device="cpu", progress=False)  # fmt: skip
    data = fit.to_inference_data(num_samples=10)
    assert "log_likelihood" not in data.children
    assert sizes(data, "posterior_predictive", "x") == {
        "chain": 1, "draw": 10, "point": 100, "feature": 2
    }  # fmt: skip


def test_a_users_own_pyro_program_converts_with_200_draws_by_default():
    def model(y=None):
        loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
        with pyro.plate("point", 20):
            return pyro.sample("y", dist.Normal(loc, 1.0), obs=y)

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    y = torch.randn(20) + 3.0
    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.1}), Trace_ELBO())
    for _ in range(300):
        svi.step(y)
    data = to_inference_data(
        model, guide, fit_args=(y,), predict_args=(), observed_site="y"
    )
    for site in ("loc", "nope"):  # a latent site, and none at all
        with pytest.raises(
            UsageError, match=f"^the model observes no site named '{site}'$"
        ):
            to_inference_data(
                model, guide, fit_args=(y,), predict_args=(), observed_site=site
            )
    pyro.clear_param_store()
    assert data["posterior"]["loc"].shape == (1, 200)
    assert float(data["posterior"]["loc"].mean()) == pytest.approx(
        float(y.mean()), abs=0.3
    )
    assert data["posterior_predictive"]["y"].shape == (1, 200, 20)
    assert np.array_equal(data["observed_data"]["y"].values, y.numpy())


def test_a_fit_refuses_a_number_of_draws_below_one():
    fit = fit_ppca(num_datapoints=20, steps=2, device="cpu", progress=False)
    with pytest.raises(
        UsageError, match="^num_samples must be a positive integer, got 0$"
    ):
        fit.to_inference_data(num_samples=0)


def test_conditional_log_likelihood_sums_each_points_own_dimensions():
    def model(x=None):
        loc = pyro.sample("loc", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        with pyro.plate("point", 4, dim=-2), pyro.plate("feature", 3, dim=-1):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    x, loc = torch.randn(4, 3), torch.tensor([0.5, -1.0, 2.0])
    pointwise = conditional_log_likelihood(model, (x,), "x", "point")
    expected = dist.Normal(loc, 1.0).log_prob(x).sum(-1)  # (4,): one per point
    assert torch.allclose(pointwise({"loc": loc}), expected)
    with pytest.raises(UsageError, match="^site 'x' is in no plate named 'data'$"):
        conditional_log_likelihood(model, (x,), "x", "data")({"loc": loc})


def test_export_without_the_extra_says_how_to_install_it(monkeypatch, tmp_path):
    block_imports(monkeypatch, "arviz")
    message = r'^ArviZ export needs the arviz extra: pip install "ppl_models\[arviz\]"$'
    with pytest.raises(UsageError, match=message):
        ppl_models.models.ppca.fit_ppca(
            num_datapoints=20, steps=2, device="cpu", progress=False
        ).to_inference_data()


assert importlib.util.find_spec("h5netcdf"), "the arviz extra includes h5netcdf"


def test_a_vae_export_draws_codes_and_images_for_its_first_test_images():
    from ppl_models.models.vae import fit_vae

    fit = fit_vae("digits", epochs=1, latent_dim=2, hidden_dims=(16,),
                  train_images=200, test_images=250, device="cpu",
                  progress=False)  # fmt: skip
    data = fit.to_inference_data()  # 100 draws of the first 200 test images
    assert sizes(data, "posterior", "z") == {
        "chain": 1, "draw": 100, "image": 200, "latent": 2
    }  # fmt: skip
    assert sizes(data, "posterior_predictive", "x") == {
        "chain": 1, "draw": 100, "image": 200, "pixel": 64
    }  # fmt: skip
    assert np.array_equal(
        data["observed_data"]["x"].values, fit.data.test[:200].numpy()
    )
    # Binary replicates, drawn from the run's seed: the same again.
    replicated = data["posterior_predictive"]["x"].values
    assert set(np.unique(replicated)) <= {0.0, 1.0}
    again = fit.to_inference_data()
    assert np.array_equal(again["posterior_predictive"]["x"].values, replicated)
    assert np.array_equal(again["posterior"]["z"].values, data["posterior"]["z"].values)
    for name in ("num_samples", "num_images"):
        with pytest.raises(
            UsageError, match=f"^{name} must be a positive integer, got 0$"
        ):
            fit.to_inference_data(**{name: 0})
