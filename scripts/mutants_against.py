"""Run named mutants against named test files, and record the verdicts as mutmut's.

mutmut runs, for each mutant, every test that reaches its function. For the training
loop, which nearly every test reaches, that is most of the suite per mutant: days on
2 cores. This runs each mutant instead against the test files given, in order, with
``-x`` (a killed mutant stops at its first failing test), in a copy of mutmut's
tree, each in a child process forked from one that has imported torch and the other
libraries (the zoo is imported in the child, with the mutant on), and writes the
verdict into ``mutants/``: killed (1) if a test failed, errored, ran past the time
limit or the child died, survived (0) if none did. Survivors are then worth a
second run against more files, before they are judged by hand. The files are first
run with no mutant on: a test that fails anyway would kill every mutant falsely.

    python scripts/mutants_against.py NAMES_FILE tests/inference/test_trainer.py ...
    python scripts/mutation_report.py --save COMMIT

The tests come from the tree at HEAD (``git archive``), the mutated code from
``mutants/``: run it at the commit the mutants were made from.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def scratch_tree() -> Path:
    """A copy of mutmut's mutated package beside the tests at HEAD."""
    scratch = Path(tempfile.mkdtemp(prefix="mutants-against-"))
    for name in ("ppl_models", "pyproject.toml", "README.md"):
        source = ROOT / "mutants" / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, scratch / name)
    archive = subprocess.run(
        ["git", "archive", "HEAD", "tests"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive.stdout, check=True)
    return scratch


#: third-party modules the runner imports once, before it forks a child per mutant:
#: each child then imports only the zoo (with its mutant on) and the tests
WARM_MODULES = (
    "numpy", "torch", "pyro", "pyro.infer", "pyro.distributions", "matplotlib",
    "matplotlib.figure", "sklearn.datasets", "hypothesis", "tqdm", "xarray",
    "arviz_base", "arviz_stats", "h5netcdf",
)  # fmt: skip


class FirstFailure:
    """A pytest plugin that keeps the id of the first test that failed or errored."""

    def __init__(self) -> None:
        self.nodeid: str | None = None

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed and self.nodeid is None:
            self.nodeid = report.nodeid

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed and self.nodeid is None:
            self.nodeid = report.nodeid or "(collection)"


class Runner:
    """Runs ``files`` with one mutant on at a time, each in a child forked from this
    process, in ``scratch``: torch and the other libraries are imported once, not
    once per mutant, while the zoo is imported afresh in each child, so a mutant of
    code that runs at import is on too. Nothing but imports runs before a fork.
    """

    def __init__(self, scratch: Path, files: list[str], timeout: float) -> None:
        self.files, self.timeout = files, timeout
        os.chdir(scratch)
        sys.path.insert(0, str(scratch))
        os.environ["OMP_NUM_THREADS"] = "1"  # before torch: the workers share cores
        os.environ.pop("PPL_MODELS_DATA", None)  # as mutmut's passes: MNIST left out
        for module in WARM_MODULES:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)

    def first_failure(self, name: str, first: Sequence[str] = ()) -> str | None:
        """The first test that fails with mutant ``name`` on, or None. A run past
        the timeout counts as killed, as mutmut counts it (a mutant that makes a
        loop endless), and so does a child that dies (a crash).

        :param first: test ids to run first, on their own (pytest would run them
            in file order with the rest): the tests that killed other mutants of
            the same function are the likeliest killers.
        """
        if first and (killer := self._run(name, first)):
            return killer
        return self._run(name, self.files)

    def _run(self, name: str, files: Sequence[str]) -> str | None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run the tests, send back the first failure
            os.close(read)
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            os.environ["MUTANT_UNDER_TEST"] = name
            first = FirstFailure()
            try:
                pytest_args = [
                    "-q",
                    "-x",
                    "-p",
                    "no:randomly",
                    "-p",
                    "no:cacheprovider",
                ]
                code = importlib.import_module("pytest").main(
                    [*pytest_args, *files], plugins=[first]
                )
                # Passed (0) or nothing to run (5); otherwise a failure that no
                # test reports, say a conftest that no longer imports (4).
                if first.nodeid is None and code not in (0, 5):
                    first.nodeid = f"(pytest exit code {int(code)})"
            finally:
                os.write(write, (first.nodeid or "").encode())
                os._exit(0)
        os.close(write)
        deadline = time.monotonic() + self.timeout
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(read)
                return f"(timed out after {self.timeout:.0f} s)"
            time.sleep(0.05)
        with os.fdopen(read) as pipe:
            found = pipe.read()
        if done[1] != 0:
            return found or f"(the run died: wait status {done[1]})"
        return found or None


def record(verdicts: dict[str, int]) -> None:
    """Write exit codes into mutmut's per-file results."""
    for meta in (ROOT / "mutants").rglob("*.meta"):
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        hits = {name: code for name, code in verdicts.items() if name in codes}
        if hits:
            codes.update(hits)
            meta.write_text(json.dumps(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", type=Path, help="a file of mutant names, one a line")
    parser.add_argument("files", nargs="+", help="test files, the likeliest first")
    parser.add_argument(
        "--timeout", type=float, default=600.0,
        help="seconds a mutant's run may take before it counts as killed",
    )  # fmt: skip
    parser.add_argument(
        "--files-pass", action="store_true",
        help="skip the first run, with no mutant on (the files are known to pass)",
    )  # fmt: skip
    args = parser.parse_args()
    names = args.names.read_text().split()
    scratch = scratch_tree()
    verdicts = {}
    try:
        runner = Runner(scratch, args.files, args.timeout)
        # A test that fails with no mutant on would kill every mutant falsely.
        failing = None if args.files_pass else runner.first_failure("")
        if failing is not None:
            sys.exit(f"{failing} fails with no mutant on: fix it or leave its file out")
        killers: dict[str, list[str]] = {}  # function -> tests that killed its mutants
        for name in names:
            function = name.rsplit("__mutmut_", 1)[0]
            likeliest = killers.setdefault(function, [])
            killer = runner.first_failure(name, first=likeliest[:3])
            if killer is not None and killer.startswith("tests/"):
                likeliest[:] = [killer] + [k for k in likeliest if k != killer]
            verdicts[name] = 0 if killer is None else 1
            print(f"{name}: {'survived' if killer is None else 'killed by ' + killer}")
            record({name: verdicts[name]})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
