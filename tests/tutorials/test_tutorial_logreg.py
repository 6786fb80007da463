"""Runs tutorials/05_logistic_regression.py in quick mode and checks the claims its
prose makes, with the margins its quick run shows."""

from __future__ import annotations

import math

import pytest

from tests.tutorials.runner import assert_figures, run_tutorial

FIGURES = ("vs_nuts_meanfield.png", "sd_ratios.png", "calibration.png")
METHODS = ("nuts", "map", "meanfield", "fullrank")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, float]:
    out = tmp_path_factory.mktemp("tutorial_out")
    numbers = run_tutorial("05_logistic_regression.py", out)
    assert_figures(out / "05_logistic_regression", FIGURES)
    return numbers


def test_every_number_is_finite_and_nuts_converged(results):
    assert all(math.isfinite(v) for v in results.values())
    assert results["nuts_r_hat_max"] < 1.1 and results["num_train"] == 455


def test_meanfield_is_overconfident_and_full_rank_less_so(results):
    # "its sds are 0.62 of NUTS's at the median": below 1, below full-rank's
    assert results["meanfield_median_sd_ratio"] < 0.8
    assert results["meanfield_median_sd_ratio"] < results["fullrank_median_sd_ratio"]
    assert results["meanfield_min_sd_ratio"] < 0.6


def test_the_conditional_sds_predict_the_meanfield_ratios(results):
    assert results["meanfield_predicted_median_sd_ratio"] < 0.8
    assert results["meanfield_ratio_vs_prediction_correlation"] > 0.5


def test_every_method_classifies_the_held_out_masses(results):
    for method in METHODS:
        assert results[f"{method}_heldout_accuracy"] >= 0.93, method
        assert -0.3 < results[f"{method}_heldout_log_density"] < 0, method
        assert results[f"{method}_heldout_calibration_error"] < 0.1, method
    # the means: every method's within a fraction of a NUTS sd
    for method in ("map", "meanfield", "fullrank"):
        assert results[f"{method}_median_abs_mean_diff_in_sds"] < 0.5, method
