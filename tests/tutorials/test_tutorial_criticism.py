"""Runs tutorials/03_criticism.py end to end in quick mode and checks its verdicts."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tutorials" / "03_criticism.py"
FIGURES = (
    "small_model_ppc.png",
    "ppc_good.png",
    "ppc_misspecified.png",
    "eigenvalue_spectrum.png",
    "replay_principal_plane.png",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESULT_LINE = re.compile(r"^RESULT (\w+) = (\S+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Run the tutorial once; its output folder and its RESULT numbers."""
    out = tmp_path_factory.mktemp("tutorial_out")
    env = {
        **os.environ,
        "PPL_MODELS_TUTORIAL_QUICK": "1",
        "PPL_MODELS_TUTORIAL_OUT": str(out),
        "MPLBACKEND": "Agg",
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"tutorial failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
        f"{done.stderr[-4000:]}"
    )
    results = {name: float(value) for name, value in RESULT_LINE.findall(done.stdout)}
    return out / "03_criticism", results


def extreme(p_value: float) -> bool:
    return p_value < 0.01 or p_value > 0.99


def test_tutorial_criticism_writes_its_figures(tutorial_run):
    figures, _ = tutorial_run
    for name in FIGURES:
        path = figures / name
        assert path.is_file(), f"missing figure {name}"
        content = path.read_bytes()
        assert len(content) > 1000, f"{name} is nearly empty"
        assert content.startswith(PNG_SIGNATURE), f"{name} is not a PNG"


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
