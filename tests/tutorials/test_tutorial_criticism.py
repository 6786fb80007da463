"""Runs tutorials/03_criticism.py end to end in quick mode and checks the claims its
prose makes, against the numbers the run prints: what each handler does, and which
posterior predictive checks pass and fail.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.tutorials.runner import assert_figures, run_tutorial

FIGURES = (
    "small_model_ppc.png",
    "ppc_good.png",
    "ppc_misspecified.png",
    "eigenvalue_spectrum.png",
    "replay_principal_plane.png",
)
SMALL_STATISTICS = (
    "mean",
    "median",
    "standard_deviation",
    "skewness",
    "smallest_value",
    "largest_value",
)
EIGENVALUES = ("largest_eigenvalue", "second_eigenvalue", "smallest_eigenvalue")


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its output folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_out")
    return out / "03_criticism", run_tutorial("03_criticism.py", out)


@pytest.fixture(scope="module")
def results(tutorial_run) -> dict[str, float]:
    return tutorial_run[1]


def passes(p_value: float) -> bool:
    """Neither extreme: the observed statistic sits among the replicated ones."""
    return 0.05 < p_value < 0.95


def test_tutorial_criticism_writes_its_figures(tutorial_run):
    assert_figures(tutorial_run[0], FIGURES)


def test_tutorial_criticism_numbers_are_finite(results):
    for name, value in results.items():
        assert math.isfinite(value), f"{name} = {value}"


def test_condition_makes_y_observed_with_the_data_as_value(results):
    assert results["condition_observes_y"] == 1
    assert results["condition_value_is_data"] == 1


def test_replay_gives_the_model_the_guide_draw(results):
    assert results["replayed_mu_is_guide_draw"] == 1


def test_trace_and_replay_by_hand_is_trace_elbo(results):
    # The same draws: equal up to float rounding, not just Monte Carlo error.
    assert abs(results["elbo_by_hand_minus_by_pyro"]) < 1e-6 * abs(
        results["elbo_by_pyro"]
    )
    assert math.isclose(results["elbo_by_hand"], results["elbo_by_pyro"], rel_tol=1e-5)


def test_block_hides_and_exposes_sites(results):
    assert results["hidden_y_recorded"] == 0
    assert results["exposed_sites_recorded"] == 1  # mu only


def test_the_packaged_check_gives_the_p_value_computed_by_hand(results):
    # Same seed, same replicates: the same p-value, exactly.
    assert results["p_by_hand_largest_value"] == results["small_ppc_p_largest_value"]


def test_the_small_model_passes_every_check(results):
    for statistic in SMALL_STATISTICS:
        p_value = results[f"small_ppc_p_{statistic}"]
        assert passes(p_value), (statistic, p_value)


def test_the_data_have_the_spectrum_of_the_true_axes(results):
    # W_TRUE W_TRUE^T + sigma^2 I: two large eigenvalues and sigma^2.
    assert math.isclose(results["true_eigenvalue_3"], results["noise_scale"] ** 2)
    for rank, statistic in enumerate(EIGENVALUES, start=1):
        observed = results[f"good_ppc_observed_{statistic}"]
        assert math.isclose(observed, results[f"true_eigenvalue_{rank}"], rel_tol=0.1)


def test_the_elbo_prefers_two_latent_dimensions(results):
    assert results["good_final_loss"] < results["misspecified_final_loss"]


def test_the_correct_model_passes_all_three_checks(results):
    for statistic in EIGENVALUES:
        p_value = results[f"good_ppc_p_{statistic}"]
        assert passes(p_value), (statistic, p_value)


def test_the_misspecified_model_fails_exactly_the_second_eigenvalue(results):
    for statistic in ("largest_eigenvalue", "smallest_eigenvalue"):
        p_value = results[f"misspecified_ppc_p_{statistic}"]
        assert passes(p_value), (statistic, p_value)
    statistic = "second_eigenvalue"
    # Fails completely: every replicate is below the data, p = 0.
    assert results[f"misspecified_ppc_p_{statistic}"] == 0
    observed = results[f"misspecified_ppc_observed_{statistic}"]
    assert results[f"misspecified_ppc_replicated_max_{statistic}"] < observed
    # "every replicate has about sigma^2 = 0.25 there"
    replicated = results[f"misspecified_ppc_replicated_mean_{statistic}"]
    assert math.isclose(replicated, results["noise_scale"] ** 2, rel_tol=0.2)
