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

FIGURES = (
    "gradient_snr.png",
    "bounds.png",
    "test_elbo.png",
    "relaxation.png",
    "catvae.png",
)
VARIANTS = ("normal", "iwae", "iaf", "catvae")
TEMPERATURES = ("5", "1", "0_5", "0_1")  # as the RESULT names write them
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


def test_iwae_training_widens_the_gap_between_the_bounds(mnist_results):
    assert mnist_results["iwae_gap"] > mnist_results["normal_gap"]


def test_the_snr_changes_more_slowly_than_the_asymptotic_rates(results):
    # "more slowly than the asymptotic rates (the lines)": sqrt(K) and 1/sqrt(K)
    k = SNR_KS[-1]
    decoder = results[f"snr_decoder_k{k}"] / results["snr_decoder_k1"]
    encoder = results[f"snr_encoder_k{k}"] / results["snr_encoder_k1"]
    assert 1 < decoder < math.sqrt(k)
    assert 1 / math.sqrt(k) < encoder < 1


def test_relaxed_draws_become_one_hot_as_the_temperature_falls(results):
    largest = [results[f"relaxed_mean_largest_tau_{t}"] for t in TEMPERATURES]
    assert largest == sorted(largest), largest
    assert largest[0] < 0.5 < 0.9 < largest[-1]


@pytest.mark.parametrize("tau", TEMPERATURES)
def test_the_argmax_of_a_relaxed_draw_is_a_categorical_draw(results, tau):
    # Shares of 4000 draws: a standard error of at most 0.008 for each class.
    assert results[f"relaxed_argmax_share_error_tau_{tau}"] < 0.04


def test_the_temperature_is_annealed_to_its_floor(results):
    # The last step's temperature, one step short of the floor 0.5.
    assert 0.5 <= results["catvae_final_temperature"] < 0.51


def test_the_discrete_code_costs_at_most_n_log_k_nats(results):
    assert 0 <= results["catvae_discrete_rate"] <= results["catvae_max_rate"]


def test_the_categorical_vaes_bounds_are_below_the_gaussian_vaes(mnist_results):
    for variant in ("normal", "iwae", "iaf"):
        for bound in ("elbo", "iwae"):
            assert (
                mnist_results[f"catvae_{bound}"] < mnist_results[f"{variant}_{bound}"]
            )


def test_in_the_quick_run_the_two_guides_gaps_are_close(mnist_results):
    # "the two gaps differ by a few hundredths of a nat" (0.03 to 0.08 over seeds)
    assert abs(mnist_results["iaf_gap"] - mnist_results["normal_gap"]) < 0.15
