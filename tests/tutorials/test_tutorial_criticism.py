"""Runs tutorials/03_criticism.py end to end in quick mode and checks its verdicts."""

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


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its output folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_out")
    return out / "03_criticism", run_tutorial("03_criticism.py", out)


def extreme(p_value: float) -> bool:
    return p_value < 0.01 or p_value > 0.99


def test_tutorial_criticism_writes_its_figures(tutorial_run):
    figures, _ = tutorial_run
    assert_figures(figures, FIGURES)


def test_tutorial_criticism_p_values_are_probabilities(tutorial_run):
    _, results = tutorial_run
    p_values = {name: value for name, value in results.items() if "_ppc_p_" in name}
    assert len(p_values) == 12  # 6 for the small model, 3 for each PPCA fit
    for name, value in p_values.items():
        assert math.isfinite(value) and 0 <= value <= 1, name


def test_tutorial_criticism_flags_only_the_misspecified_model(tutorial_run):
    _, results = tutorial_run
    assert extreme(results["misspecified_ppc_p_second_eigenvalue"])
    assert not extreme(results["good_ppc_p_second_eigenvalue"])
