"""Runs tutorials/01_ppca.py end to end in quick mode and checks the claims its prose
makes, against the numbers the run prints.

Each check would fail if the number behind it were wrong: identities are pinned at
float tolerance, and orderings and ranges are the ones the prose states, with margins
that the quick run shows.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.tutorials.runner import assert_figures, run_tutorial

FIGURES = (
    "data.png",
    "map_loss.png",
    "map_replay.png",
    "loss_traces.png",
    "meanfield_replay.png",
    "axes.png",
    "vs_nuts.png",
    "ppc_map.png",
    "ppc_meanfield.png",
)
PPC_STATISTICS = ("variance_of_x1", "variance_of_x2", "largest_eigenvalue_of_cov_x")
AXIS_STATISTICS = ("variance_of_x1", "largest_eigenvalue_of_cov_x")


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its output folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_out")
    return out / "01_ppca", run_tutorial("01_ppca.py", out)


@pytest.fixture(scope="module")
def results(tutorial_run) -> dict[str, float]:
    return tutorial_run[1]


def test_tutorial_ppca_writes_its_figures(tutorial_run):
    assert_figures(tutorial_run[0], FIGURES)


def test_tutorial_ppca_numbers_are_finite(results):
    for name, value in results.items():
        assert math.isfinite(value), f"{name} = {value}"


def test_the_plain_function_and_the_package_model_have_one_joint_density(results):
    assert math.isclose(
        results["log_joint_plain"], results["log_joint_package"], rel_tol=1e-5
    )


def test_replay_latents_is_condition_under_trace(results):
    assert results["replay_latents_same_data"] == 1
    assert results["replayed_w_is_map"] == 1


def test_the_map_loss_drops_steeply_then_creeps_down(results):
    # "falls about ninefold in the first hundred steps"
    assert 7 < results["map_loss_step_1"] / results["map_loss_step_100"] < 12
    assert results["map_loss_last"] < results["map_loss_step_100"]


def test_both_fits_find_the_true_and_the_closed_form_direction(results):
    for method in ("map", "meanfield"):
        assert results[f"{method}_axis_cosine_true"] >= 0.9999
        assert results[f"{method}_axis_cosine_closed_form"] >= 0.9999


def test_the_closed_form_length_is_the_tipping_bishop_formula(results):
    # |W_ML|^2 = top eigenvalue of the second moment - sigma^2, for K = 1.
    expected = results["top_eigenvalue_second_moment"] - results["noise_scale"] ** 2
    assert math.isclose(results["closed_form_w_norm"] ** 2, expected, rel_tol=1e-4)


def test_the_closed_form_matches_the_truth(results):
    assert abs(results["closed_form_w_norm"] / results["true_w_norm"] - 1) < 0.05


def test_the_map_axis_is_about_twice_as_long_as_the_closed_form(results):
    ratio = results["map_w_norm"] / results["closed_form_w_norm"]
    assert 1.5 < ratio < 2.5


def test_the_meanfield_axis_is_a_little_short_of_the_closed_form(results):
    ratio = results["meanfield_w_norm"] / results["closed_form_w_norm"]
    assert 0.8 < ratio < 1.0


def test_meanfield_is_autonormal_with_analytic_kl(results):
    assert results["meanfield_guide_is_autonormal"] == 1
    assert results["meanfield_elbo_is_analytic"] == 1


def test_the_posterior_sd_of_w_is_of_order_sigma_over_sqrt_n(results):
    expected = results["noise_scale"] / math.sqrt(results["num_datapoints"])
    for which in ("min", "max"):
        ratio = results[f"meanfield_w_scale_{which}"] / expected
        assert 0.5 < ratio < 2.5, (which, ratio)


def test_the_posterior_sd_of_z_is_sigma_over_the_axis_length(results):
    sigma, length = results["noise_scale"], results["meanfield_w_norm"]
    expected = sigma / math.sqrt(length**2 + sigma**2)
    assert math.isclose(results["meanfield_z_scale_mean"], expected, rel_tol=0.1)


def test_the_meanfield_loss_settles_and_ends_above_the_map_loss(results):
    settled = results["meanfield_loss_steps_301_400"]
    final = results["meanfield_final_loss"]
    assert abs(settled - final) < 0.01 * final
    assert final > results["map_final_loss"]


def test_the_map_replay_reproduces_the_covariance(results):
    assert results["map_replay_cov_rel_error"] < 0.05


def test_meanfield_passes_every_check(results):
    for statistic in PPC_STATISTICS:
        p_value = results[f"meanfield_ppc_p_{statistic}"]
        assert 0.1 < p_value < 0.9, (statistic, p_value)


def test_map_fails_the_checks_along_the_axis_and_passes_the_other(results):
    for statistic in AXIS_STATISTICS:
        assert results[f"map_ppc_p_{statistic}"] > 0.95, statistic
    assert 0.05 < results["map_ppc_p_variance_of_x2"] < 0.95


def test_the_map_excess_is_the_predicted_overfit_of_z(results):
    statistic = "largest_eigenvalue_of_cov_x"
    observed = results[f"map_ppc_observed_{statistic}"]
    excess = results[f"map_ppc_replicated_mean_{statistic}"] - observed
    sigma, length = results["noise_scale"], results["map_w_norm"]
    shrink = length**2 / (length**2 + sigma**2)
    predicted = sigma**2 - (1 - shrink**2) * observed
    # the replicated mean has a Monte Carlo error of about 0.007 in quick mode
    assert abs(excess - predicted) < 0.02
    assert 0 < excess < sigma**2
    assert 0.01 < excess / observed < 0.02  # "an excess of 1 to 2%"


def test_map_replicates_vary_less_than_meanfield_replicates(results):
    for statistic in AXIS_STATISTICS:
        assert (
            results[f"map_ppc_replicated_sd_{statistic}"]
            < results[f"meanfield_ppc_replicated_sd_{statistic}"]
        )


def test_nuts_converged_and_the_collapsed_map_is_the_closed_form(results):
    # "NUTS (R-hat 1.00)"; "collapsed MAP ... has the closed form's length"
    assert results["nuts_r_hat"] < 1.05
    assert results["collapsed_axis_cosine_closed_form"] > 0.9999
    assert math.isclose(
        results["collapsed_w_norm"], results["closed_form_w_norm"], rel_tol=0.01
    )
    # "sits at the centre of the posterior"
    assert results["collapsed_vs_nuts_mean_diff_in_sds"] < 1.5


def test_nuts_sds_are_of_the_order_the_prose_gives(results):
    # "posterior sds of 0.031 and 0.009" at N = 5000; they scale as 1 / sqrt(N).
    scale = math.sqrt(5000 / results["num_datapoints"])
    assert 0.02 * scale < results["nuts_sd_w_first"] < 0.045 * scale
    assert 0.005 * scale < results["nuts_sd_w_second"] < 0.015 * scale


def test_meanfield_is_biased_and_too_narrow_along_the_axis_against_nuts(results):
    # "6.8 and 3.3 NUTS sds from the NUTS mean"
    assert results["meanfield_vs_nuts_mean_diff_in_sds"] > 2
    # "0.39 of the NUTS sd" on the first entry; "1.08" on the second
    assert results["meanfield_vs_nuts_sd_ratio_w_first"] < 0.7
    assert 0.6 < results["meanfield_vs_nuts_sd_ratio_w_second"] < 1.5
    # "Joint MAP is not in the posterior at all (112 and 72 NUTS sds out)"
    assert results["map_vs_nuts_mean_diff_in_sds"] > 30
