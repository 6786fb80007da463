"""PPCA on a user's data: the mean and the noise learned, held against the closed
form and scikit-learn's PCA; and the posterior of w held against NUTS.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from ppl_models.errors import UsageError
from ppl_models.models.ppca import closed_form, fit_ppca, subspace_cosine
from ppl_models.models.ppca.nuts import align

# Scikit-learn's wine data (178 points, 13 features), standardized, and the same
# shifted by a mean far from zero, as a user's data would be.
WINE = StandardScaler().fit_transform(load_wine().data).astype(np.float32)
SHIFT = (3.0 * (1 + np.arange(WINE.shape[1]) % 3)).astype(np.float32)
DATA = {"standardized": WINE, "shifted": WINE + SHIFT}


def fit(data, inference, latent_dim, **options):
    settings = {"steps": 150, "device": "cpu", "progress": False, **options}
    return fit_ppca(data, inference=inference, latent_dim=latent_dim, **settings)


def test_the_closed_form_is_scikit_learns_pca():
    x = torch.from_numpy(DATA["shifted"]).T  # (D, N)
    n = x.shape[1]
    for k in (1, 2, 3):
        exact = closed_form(x, k)
        pca = PCA(n_components=k).fit(DATA["shifted"])
        # scikit-learn divides by N - 1; maximum likelihood by N.
        assert math.isclose(
            exact.noise_scale_ml**2, pca.noise_variance_ * (n - 1) / n, rel_tol=1e-4
        )
        assert np.allclose(exact.mean[:, 0], pca.mean_, atol=1e-4)
        components = torch.from_numpy(pca.components_.T.copy()).float()
        assert subspace_cosine(exact.w, components) > 0.99999
        lengths = (
            torch.from_numpy(pca.explained_variance_) * (n - 1) / n
        ) - exact.noise_scale_ml**2
        assert torch.allclose(exact.w.norm(dim=0) ** 2, lengths.float(), rtol=1e-4)


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
@pytest.mark.parametrize("data", ["standardized", "shifted"])
def test_map_fits_span_the_maximum_likelihood_subspace(data, latent_dim):
    d = WINE.shape[1]
    collapsed = fit(DATA[data], "collapsed", latent_dim)
    joint = fit(DATA[data], "map", latent_dim)
    exact = collapsed.closed_form
    for point in (collapsed, joint):
        assert subspace_cosine(point.w, exact.w) >= 0.999
        assert torch.allclose(point.mu, exact.mean, atol=0.05)
    # Integrating z out gives maximum likelihood; the joint MAP divides the residual
    # by D where maximum likelihood divides by D - K.
    assert abs(collapsed.noise_scale / exact.noise_scale_ml - 1) < 0.02
    expected = math.sqrt((d - latent_dim) / d) * exact.noise_scale_ml
    assert joint.noise_scale == pytest.approx(expected, rel=0.01)
    assert collapsed.summary()["noise_scale_closed_form"] == exact.noise_scale_ml
    assert "D - K" in joint.summary()["noise_scale_note"]
    assert "noise_scale_note" not in collapsed.summary()


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
def test_meanfield_spans_the_subspace_on_shifted_data(latent_dim):
    meanfield = fit(DATA["shifted"], "meanfield", latent_dim, steps=500, lr=0.03)
    assert subspace_cosine(meanfield.w, meanfield.w_closed_form) >= 0.99
    assert torch.allclose(meanfield.mu, meanfield.closed_form.mean, atol=0.1)


def test_a_given_noise_scale_is_kept_and_used_by_the_closed_form():
    fitted = fit(DATA["shifted"], "collapsed", 2, noise_scale=0.3)
    assert fitted.noise_scale == pytest.approx(0.3) and not fitted.model.learns_noise
    x = fitted.x
    assert torch.equal(fitted.w_closed_form, closed_form(x, 2, 0.3).w)
    assert fitted.summary()["noise_scale"] == pytest.approx(0.3)


def test_learning_the_noise_needs_a_discarded_dimension():
    with pytest.raises(UsageError, match="latent_dim=2 must be below"):
        fit(np.random.default_rng(0).normal(size=(50, 2)), "collapsed", 2)


def test_align_undoes_a_rotation_and_a_reflection():
    w = torch.randn(5, 2, dtype=torch.float64)
    angle = torch.tensor(0.7, dtype=torch.float64)
    rotation = torch.stack(
        [
            torch.stack([angle.cos(), -angle.sin()]),
            torch.stack([angle.sin(), angle.cos()]),
        ]
    )
    reflection = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    draws = torch.stack([w @ rotation, w @ reflection, -w])
    assert torch.allclose(align(draws, w), w.expand(3, 5, 2), atol=1e-10)


@pytest.fixture(scope="module")
def against_nuts(tmp_path_factory):
    """The lecture's model fitted by collapsed MAP and by mean-field, the collapsed
    fit criticised with NUTS (one run serves both: the noise and the mean are
    known, so both fits have the same posterior of w)."""
    settings = {"num_datapoints": 300, "device": "cpu", "progress": False}
    collapsed = fit_ppca(inference="collapsed", steps=500, **settings)
    collapsed.config.against_nuts = True
    collapsed.config.nuts_samples = collapsed.config.nuts_warmup = 150
    run = tmp_path_factory.mktemp("collapsed")
    numbers = collapsed.criticize(run)["vs_nuts"]
    meanfield = fit_ppca(inference="meanfield", steps=500, **settings)
    return collapsed, meanfield, numbers, run


def test_nuts_is_the_posterior_the_collapsed_map_sits_in(against_nuts):
    fitted, _, numbers, run = against_nuts
    assert (run / "vs_nuts.png").stat().st_size > 0
    assert numbers["nuts_r_hat_max"] < 1.05 and numbers["nuts_samples"] == 150
    # With N = 300 the posterior is nearly Gaussian about the maximum likelihood.
    assert numbers["median_abs_mean_diff_in_sds"] < 1.0
    assert "sd_ratio" not in numbers
    closed = fitted.w_closed_form.abs().numpy()
    assert np.allclose(np.abs(numbers["nuts_mean"]), closed, rtol=0.05)


def test_meanfield_is_too_narrow_against_nuts(against_nuts):
    _, meanfield, numbers, _ = against_nuts
    nuts_mean, nuts_sd = np.array(numbers["nuts_mean"]), np.array(numbers["nuts_sd"])
    ratios = meanfield.w_scale.numpy() / nuts_sd
    assert np.median(ratios) < 0.9
    # compare() gives the same numbers: aligned by sign, then in NUTS sds.
    w = meanfield.w.numpy() * np.sign(meanfield.w.numpy()[0, 0] * nuts_mean[0, 0])
    assert np.abs(w - nuts_mean).max() / nuts_sd.min() < 50


def test_the_closed_form_without_a_mean_and_its_refusals():
    x = torch.from_numpy(DATA["shifted"]).T  # (D, N), far from zero mean
    lecture = closed_form(x, 2, 0.5, centre=False)
    assert torch.equal(lecture.mean, torch.zeros(x.shape[0], 1))
    second_moment = torch.linalg.eigvalsh(x @ x.T / x.shape[1]).flip(0)
    assert torch.allclose(lecture.w.norm(dim=0) ** 2, second_moment[:2] - 0.25)
    with pytest.raises(UsageError) as error:
        closed_form(x[:2], 2)
    assert str(error.value) == (
        "latent_dim=2 must be below the data's 2 dimensions to learn the noise "
        "scale; give --noise-scale"
    )
    assert closed_form(x[:3], 2).noise_scale_ml is not None
    # With every eigenvalue kept there is none to estimate sigma from: None, not NaN.
    assert closed_form(x[:3], 3, noise_scale=0.5).noise_scale_ml is None
