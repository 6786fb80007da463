"""Fixtures of the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.cli_runs import DIGITS, PPCA, run


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A 2-epoch digits VAE run and a PPCA run, fitted once
    per test process."""
    root = tmp_path_factory.mktemp("runs")
    assert run(*DIGITS, "--epochs", "2", "--out", root / "vae")[0] == 0
    assert run(*PPCA, "--out", root / "ppca")[0] == 0
    return {"vae": root / "vae", "ppca": root / "ppca"}
