"""Runs tutorials/02_vae_mnist.py end to end in quick mode and checks its output.

The tutorial reads MNIST from ``$PPL_MODELS_DATA/mnist/`` when it is there and falls
back to the offline 8x8 digits otherwise; the test keeps ``PPL_MODELS_DATA`` as the
environment has it, so running the suite with and without it covers both paths.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import mnist_root
from tests.tutorials.runner import assert_figures, run_tutorial

FIGURES = (
    "data.png",
    "elbo_estimators.png",
    "nelbo.png",
    "samples.png",
    "reconstructions.png",
    "manifold.png",
    "latent_space.png",
    "iwae.png",
)


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its figure folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_vae")
    return out / "02_vae_mnist", run_tutorial("02_vae_mnist.py", out)


def test_tutorial_vae_writes_its_figures(tutorial_run):
    figures, _ = tutorial_run
    assert_figures(figures, FIGURES)


def test_tutorial_vae_uses_mnist_when_present_else_digits(tutorial_run):
    _, results = tutorial_run
    expected = 28 * 28 if mnist_root() is not None else 8 * 8
    assert results["pixels_per_image"] == expected


def test_tutorial_vae_numbers_are_sane(tutorial_run):
    _, results = tutorial_run
    assert results, "the tutorial printed no RESULT lines"
    for name, value in results.items():
        assert math.isfinite(value), f"{name} = {value}"
    # Training helps: the last epoch's test ELBO beats the first one's.
    first = results["main_test_elbo_first_epoch"]
    last = results["main_test_elbo_last_epoch"]
    assert last > first
    assert results["main_test_elbo"] == last
    epochs = [k for k in results if k.startswith("main_test_elbo_epoch_")]
    assert len(epochs) >= 2
    # Both estimators optimise the same ELBO: negative, and not far apart.
    trace = results["trace_final_test_elbo"]
    meanfield = results["meanfield_final_test_elbo"]
    assert trace < 0 and meanfield < 0
    assert abs(trace - meanfield) < 0.1 * abs(trace)
    for name in ("trace", "meanfield"):
        assert results[f"elbo_sd_{name}"] > 0
        assert results[f"encoder_grad_var_{name}"] > 0
        assert results[f"decoder_grad_var_{name}"] > 0
    assert results["latent2_test_elbo"] < 0


def test_tutorial_vae_iwae_bounds_the_elbo(tutorial_run):
    _, results = tutorial_run
    prefix = "iwae_K"
    bounds = {
        int(name[len(prefix) :]): value
        for name, value in results.items()
        if name.startswith(prefix)
    }
    assert len(bounds) == 3
    ks = sorted(bounds)
    assert ks[0] == 1
    # Same draws: log of the mean weight >= mean of the log weights (Jensen).
    assert bounds[ks[-1]] >= results["iwae_elbo"] - 1e-3
    assert results["iwae_gain"] >= -1e-3
    # More samples, a tighter bound (allowing for Monte Carlo noise).
    assert bounds[ks[-1]] >= bounds[ks[0]] - 0.5
