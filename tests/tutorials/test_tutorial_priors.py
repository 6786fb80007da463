"""Runs tutorials/04_vae_priors.py end to end in quick mode and checks its output.

As for the VAE tutorial, ``PPL_MODELS_DATA`` is kept as the environment has it: with
MNIST under it the tutorial uses MNIST, without it the offline digits.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import mnist_root
from tests.tutorials.runner import assert_figures, run_tutorial

FIGURES = (
    "test_elbo.png",
    "bounds.png",
    "bounds_both_sizes.png",
    "samples.png",
    "latent_priors.png",
)
COMPONENTS = 10


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its figure folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_priors")
    return out / "04_vae_priors", run_tutorial("04_vae_priors.py", out)


def test_tutorial_priors_writes_its_figures(tutorial_run):
    figures, _ = tutorial_run
    assert_figures(figures, FIGURES)


def test_tutorial_priors_uses_mnist_when_present_else_digits(tutorial_run):
    _, results = tutorial_run
    expected = 28 * 28 if mnist_root() is not None else 8 * 8
    assert results["pixels_per_image"] == expected


@pytest.mark.parametrize("prefix", ["", "latent2_"])
@pytest.mark.parametrize("prior", ["normal", "mixture"])
def test_tutorial_priors_bounds_are_sane(tutorial_run, prefix, prior):
    _, results = tutorial_run
    for name, value in results.items():
        assert math.isfinite(value), f"{name} = {value}"
    key = f"{prefix}{prior}_"
    assert results[key + "test_elbo"] < 0
    assert results[key + "elbo"] < 0
    # Same draws: the importance-weighted bound is never below the ELBO.
    assert results[key + "iwae"] >= results[key + "elbo"] - 1e-3
    # A Monte Carlo estimate of a KL divergence: not negative beyond noise.
    assert results[key + "rate"] > -0.5


@pytest.mark.parametrize("prior", ["normal", "mixture"])
def test_tutorial_priors_rate_plus_distortion_is_the_elbo(tutorial_run, prior):
    _, results = tutorial_run
    total = results[f"{prior}_rate"] + results[f"{prior}_distortion"]
    # Two Monte Carlo estimates of the same number, from different draws.
    assert abs(total + results[f"{prior}_elbo"]) < 2.0


def test_tutorial_priors_mixture_weights_are_a_distribution(tutorial_run):
    _, results = tutorial_run
    assert 1.0 / COMPONENTS - 1e-6 <= results["mixture_weight_max"] <= 1.0
