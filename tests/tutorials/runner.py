"""Running a tutorial script in quick mode, as the test suite does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import mnist_root

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESULT_LINE = re.compile(r"^RESULT (\w+) = (\S+)$", re.MULTILINE)


def run_tutorial(script: str, out: Path, **env: str) -> dict[str, float]:
    """Run ``tutorials/<script>`` in quick mode with figures under ``out``; return
    its ``RESULT name = value`` numbers. Fails with the tail of its output.
    """
    # The tutorial reads MNIST from where the tests found it (or falls back to the
    # digits where they found none).
    root = mnist_root()
    environment = {
        **os.environ,
        **({"PPL_MODELS_DATA": str(root)} if root is not None else {}),
        "PPL_MODELS_TUTORIAL_QUICK": "1",
        "PPL_MODELS_TUTORIAL_OUT": str(out),
        "MPLBACKEND": "Agg",
        **env,
    }
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tutorials" / script)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,  # quick mode takes seconds; a loaded shared machine, minutes
    )
    assert done.returncode == 0, (
        f"{script} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
        f"{done.stderr[-4000:]}"
    )
    return {name: float(value) for name, value in RESULT_LINE.findall(done.stdout)}


def assert_figures(folder: Path, names: tuple[str, ...]) -> None:
    """Each named figure exists under ``folder`` and is a non-trivial PNG."""
    for name in names:
        path = folder / name
        assert path.is_file(), f"missing figure {name}"
        content = path.read_bytes()
        assert len(content) > 1000, f"{name} is nearly empty"
        assert content.startswith(PNG_SIGNATURE), f"{name} is not a PNG"
