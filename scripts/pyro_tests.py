"""Run Pyro's own inference tests against the zoo's ELBOs, and against Pyro's.

The zoo's ``DeviceTrace_ELBO`` and ``DeviceTraceMeanField_ELBO`` claim to be Pyro's
``Trace_ELBO`` and ``TraceMeanField_ELBO`` with the loss kept on the device. This
runs the test files of Pyro's ``tests/infer`` that use those ELBOs twice, with the
zoo and all its models imported both times: once with Pyro's classes, once with the
zoo's in their place (``scripts/pyro_elbo_plugin.py``). Every test must end the same
way in both runs.

Pyro does not ship its tests, so this needs a checkout of Pyro's repository at the
installed version (its ``tests/`` and ``setup.cfg``; the installed ``pyro`` package
is the one tested, not the checkout's source). The ELBO sources must match the
installed ones; this was run against a checkout whose ``trace_elbo.py`` and
``trace_mean_field_elbo.py`` equal those of the installed 1.9.2::

    version=$(python -c "import pyro; print(pyro.__version__)")
    git clone --branch "$version" https://github.com/pyro-ppl/pyro /tmp/pyro
    python scripts/pyro_tests.py /tmp/pyro

It prints, per run, how many tests passed, failed, errored and were skipped, then
every test whose outcome differs; it exits 1 if any does. Not part of ``make test``:
it needs the checkout (CI has no network) and runs for minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS.parent

# The files of Pyro's tests/infer that build a Trace_ELBO or TraceMeanField_ELBO.
TEST_FILES = (
    "tests/infer/test_gradient.py",
    "tests/infer/test_inference.py",
    "tests/infer/test_valid_models.py",
    "tests/infer/test_jit.py",
    "tests/infer/test_autoguide.py",
    "tests/infer/autoguide/test_inference.py",
)


def outcomes(report: Path) -> dict[str, str]:
    """Test id -> ``passed``, ``failed``, ``error`` or ``skipped``, from JUnit XML.

    Parametrized ids name the ELBO class; the zoo's are named as Pyro's, so the
    two runs' ids match.
    """
    result = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        test_id = test_id.replace("DeviceTrace", "Trace")
        tags = {child.tag for child in case}
        for tag in ("error", "failure", "skipped"):
            if tag in tags:
                result[test_id] = {"failure": "failed"}.get(tag, tag)
                break
        else:
            result[test_id] = "passed"
    return result


def run_pyro_tests(
    checkout: Path, elbos: str, files: list[str], extra: list[str]
) -> dict[str, str]:
    """Run ``files`` of Pyro's tests with ``elbos`` (``"pyro"`` or ``"zoo"``)."""
    with tempfile.TemporaryDirectory() as scratch:
        # Only tests/ and setup.cfg (its pytest settings): with Pyro's source absent,
        # the tests import the installed pyro, the one the zoo runs on.
        root = Path(scratch)
        shutil.copytree(checkout / "tests", root / "tests")
        shutil.copy(checkout / "setup.cfg", root / "setup.cfg")
        report = root / "report.xml"
        paths = os.pathsep.join(
            p for p in (str(SCRIPTS), str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
        )
        env = {**os.environ, "PPL_MODELS_ELBOS": elbos, "PYTHONPATH": paths}
        command = [
            sys.executable, "-c", "import sys, pytest; sys.exit(pytest.main())",
            "-p", "pyro_elbo_plugin", "-q", "-p", "no:cacheprovider",
            f"--junitxml={report}", *files, *extra,
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True
        )
        if not report.exists():
            output = done.stdout[-3000:] + done.stderr[-3000:]
            sys.exit(f"pytest did not run ({elbos}):\n{output}")
        print(done.stdout.strip().splitlines()[-1])
        return outcomes(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of Pyro's repository")
    parser.add_argument(
        "--files", nargs="+", default=list(TEST_FILES), help="Pyro test files to run"
    )
    args, extra = parser.parse_known_args(argv)
    if not (args.checkout / "tests" / "infer").is_dir():
        parser.error(f"{args.checkout} has no tests/infer: not a checkout of Pyro")
    results = {}
    for elbos in ("pyro", "zoo"):
        print(f"Pyro's tests with {elbos} ELBOs:", flush=True)
        results[elbos] = run_pyro_tests(args.checkout, elbos, args.files, extra)
        counts = Counter(results[elbos].values())
        print("  " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    pyro_run, zoo_run = results["pyro"], results["zoo"]
    differ = sorted(
        t for t in pyro_run.keys() | zoo_run.keys() if pyro_run.get(t) != zoo_run.get(t)
    )
    for test_id in differ:
        print(f"  {test_id}: {pyro_run.get(test_id)} with Pyro's, "
              f"{zoo_run.get(test_id)} with the zoo's")  # fmt: skip
    print(f"{len(differ)} of {len(pyro_run)} tests end differently")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
