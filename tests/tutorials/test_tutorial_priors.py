"""Runs tutorials/04_vae_priors.py end to end in quick mode and checks the claims its
prose makes, against the numbers the run prints.

As for the VAE tutorial, ``PPL_MODELS_DATA`` is kept as the environment has it: with
MNIST under it the tutorial uses MNIST, without it the offline digits. The prose's
comparison of the two priors is about MNIST; on the digits those checks are skipped.
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
PRIORS = ("normal", "mixture")
SIZES = ("", "latent2_")  # RESULT prefixes: the 16-D pair and the 2-D pair


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its figure folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_priors")
    return out / "04_vae_priors", run_tutorial("04_vae_priors.py", out)


@pytest.fixture(scope="module")
def results(tutorial_run) -> dict[str, float]:
    return tutorial_run[1]


@pytest.fixture
def mnist_results(results) -> dict[str, float]:
    """The results, where the run used MNIST; else a skip saying why."""
    if mnist_root() is None:
        pytest.skip(
            "the prose compares the priors on MNIST; the quick digits run barely "
            "uses its latent space (a rate under a nat), so neither prior wins"
        )
    return results


def gain(results: dict[str, float], size: str, key: str) -> float:
    """How much the mixture prior raises ``key`` over the standard Normal."""
    return results[f"{size}mixture_{key}"] - results[f"{size}normal_{key}"]


def test_tutorial_priors_writes_its_figures(tutorial_run):
    assert_figures(tutorial_run[0], FIGURES)


def test_tutorial_priors_numbers_are_finite(results):
    for name, value in results.items():
        assert math.isfinite(value), f"{name} = {value}"


def test_tutorial_priors_uses_mnist_when_present_else_digits(results):
    mnist = mnist_root() is not None
    assert results["pixels_per_image"] == (28 * 28 if mnist else 8 * 8)
    # "784-400-L and back, L = 16 as in TFP's example" (8 for the digits)
    assert results["hidden_units"] == 400
    assert results["latent_dim"] == (16 if mnist else 8)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("prior", PRIORS)
def test_rate_plus_distortion_is_minus_the_elbo(results, size, prior):
    # The same draws give all three: an identity up to rounding. Each is printed to
    # 4 decimals, so the sum may be off by 1.5e-4; from other draws, by hundredths.
    key = f"{size}{prior}_"
    total = results[key + "rate"] + results[key + "distortion"]
    assert math.isclose(total, -results[key + "elbo"], rel_tol=0, abs_tol=5e-4)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("prior", PRIORS)
def test_the_iwae_bound_is_above_the_elbo(results, size, prior):
    key = f"{size}{prior}_"
    assert results[key + "iwae"] > results[key + "elbo"]


@pytest.mark.parametrize("size", SIZES)
def test_the_learned_prior_raises_both_bounds_by_about_as_much(mnist_results, size):
    assert gain(mnist_results, size, "test_elbo") > 0
    elbo_gain = gain(mnist_results, size, "elbo")
    assert elbo_gain > 0
    assert 0.5 < gain(mnist_results, size, "iwae") / elbo_gain < 1.5


def test_with_16_dimensions_both_parts_of_the_elbo_improve(mnist_results):
    assert gain(mnist_results, "", "rate") < 0
    assert gain(mnist_results, "", "distortion") < 0


def test_with_2_dimensions_most_of_the_gain_is_in_the_distortion(mnist_results):
    rate, distortion = (
        gain(mnist_results, "latent2_", k) for k in ("rate", "distortion")
    )
    assert distortion < 0
    assert abs(rate) < abs(distortion)


def test_the_learned_weights_follow_the_codes(results):
    # Closer to the shares of codes the components hold than the equal weights the
    # mixture started from...
    assert (
        results["learned_weights_distance_to_code_shares"]
        < results["equal_weights_distance_to_code_shares"]
    )
    # ...and each weight belongs to its component: shuffled, they rarely come as close.
    assert results["shuffled_weights_as_close"] < 0.05
