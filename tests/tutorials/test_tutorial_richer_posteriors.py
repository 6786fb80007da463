"""Runs tutorials/06_richer_posteriors.py end to end in quick mode and checks the
claims its prose makes, against the numbers the run prints.

As for the other VAE tutorials, ``PPL_MODELS_DATA`` is kept as the environment has
it: with MNIST under it the tutorial uses MNIST, without it the offline digits. The
prose's comparisons of the variants are about MNIST; on the digits those checks are
skipped.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import mnist_root
from tests.tutorials.runner import assert_figures, run_tutorial

FIGURES = ("gradient_snr.png", "bounds.png", "test_elbo.png")
VARIANTS = ("normal", "iwae", "iaf")
SNR_KS = (1, 5, 50)


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its figure folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_richer_posteriors")
    return out / "06_richer_posteriors", run_tutorial("06_richer_posteriors.py", out)


@pytest.fixture(scope="module")
def results(tutorial_run) -> dict[str, float]:
    return tutorial_run[1]


@pytest.fixture
def mnist_results(results) -> dict[str, float]:
    """The results, where the run used MNIST; else a skip saying why."""
    if mnist_root() is None:
        pytest.skip("the prose compares the variants on MNIST")
    return results


def test_tutorial_richer_posteriors_writes_its_figures(tutorial_run):
    assert_figures(tutorial_run[0], FIGURES)


def test_tutorial_richer_posteriors_numbers_are_finite(results):
    for name, value in results.items():
        assert math.isfinite(value), f"{name} = {value}"


def test_uses_mnist_when_present_else_digits(results):
    mnist = mnist_root() is not None
    assert results["pixels_per_image"] == (28 * 28 if mnist else 8 * 8)
    assert results["latent_dim"] == (50 if mnist else 10)  # "784-400-50"


def test_pyros_renyi_elbo_at_alpha_0_and_the_zoos_iwae_agree(results):
    # "their losses agree to float rounding" (printed to 4 decimals)
    assert results["pyro_zoo_max_abs_difference"] < 1e-3


def test_the_bound_of_an_untrained_vae_rises_with_k(results):
    bounds = [results[f"untrained_bound_k{k}"] for k in SNR_KS]
    assert bounds == sorted(bounds) and bounds[0] < bounds[-1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_iwae_bound_is_above_the_elbo(results, variant):
    assert results[f"{variant}_iwae"] > results[f"{variant}_elbo"]
    assert results[f"{variant}_gap"] == pytest.approx(
        results[f"{variant}_iwae"] - results[f"{variant}_elbo"], abs=5e-4
    )


def test_the_decoders_gradient_snr_rises_with_k_and_the_encoders_falls(results):
    encoder = [results[f"snr_encoder_k{k}"] for k in SNR_KS]
    decoder = [results[f"snr_decoder_k{k}"] for k in SNR_KS]
    assert encoder == sorted(encoder, reverse=True), encoder
    assert decoder == sorted(decoder), decoder


def test_the_flows_density_by_hand_is_pyros(results):
    assert results["flow_density_max_abs_difference"] < 1e-3


def test_iwae_training_gives_a_better_iwae_bound(mnist_results):
    assert mnist_results["iwae_iwae"] > mnist_results["normal_iwae"]
