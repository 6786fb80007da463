"""Runs tutorials/01_ppca.py end to end in quick mode and checks what it reports."""

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
    "ppc_map.png",
    "ppc_meanfield.png",
)
PPC_STATISTICS = ("variance_of_x1", "variance_of_x2", "largest_eigenvalue_of_cov_x")


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its output folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_out")
    return out / "01_ppca", run_tutorial("01_ppca.py", out)


def test_tutorial_ppca_writes_its_figures(tutorial_run):
    figures, _ = tutorial_run
    assert_figures(figures, FIGURES)


def test_tutorial_ppca_reports_sane_numbers(tutorial_run):
    _, results = tutorial_run
    for value in results.values():
        assert math.isfinite(value)
    for method in ("map", "meanfield"):
        assert results[f"{method}_axis_cosine_true"] >= 0.99
        assert results[f"{method}_axis_cosine_closed_form"] >= 0.99
        assert 0 <= results[f"{method}_replay_cov_rel_error"] < 0.5
        for statistic in PPC_STATISTICS:
            assert 0 <= results[f"{method}_ppc_p_{statistic}"] <= 1
    assert 0 < results["meanfield_w_scale_min"] <= results["meanfield_w_scale_max"]
    assert results["meanfield_w_scale_max"] < 1
    # MAP stretches w (the prior on z rewards shrinking it); the truth is ~3.1 long.
    assert results["map_w_norm"] > results["closed_form_w_norm"]
