"""Run named mutants against named test files, and record the verdicts as mutmut's.

mutmut runs, for each mutant, every test that reaches its function. For the training
loop, which nearly every test reaches, that is most of the suite per mutant: days on
2 cores. This runs each mutant instead against the test files given, in order, with
``-x`` (a killed mutant stops at its first failing test), in a copy of mutmut's
tree with the mutant on from the start of the process, and writes the verdict into
``mutants/``: killed (1) if a test failed, survived (0) if none did. Survivors are
then worth a second run against more files, before they are judged by hand.

    python scripts/mutants_against.py NAMES_FILE tests/inference/test_trainer.py ...
    python scripts/mutation_report.py --save COMMIT

The tests come from the tree at HEAD (``git archive``), the mutated code from
``mutants/``: run it at the commit the mutants were made from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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


def run_mutant(
    scratch: Path, name: str, files: list[str], timeout: float = 600.0
) -> str | None:
    """The first test that fails with mutant ``name`` on, or None. A run past
    ``timeout`` seconds counts as killed, as mutmut counts it (a mutant that makes
    a loop endless).
    """
    env = {**os.environ, "MUTANT_UNDER_TEST": name, "OMP_NUM_THREADS": "1"}
    env.pop("PPL_MODELS_DATA", None)  # as mutmut's passes: MNIST left out
    # -rfE: a test that errors (say in a fixture) kills the mutant too.
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-rfE", "-p", "no:randomly"]
    command += ["-p", "no:cacheprovider", *files]
    try:
        out = subprocess.run(
            command, cwd=scratch, env=env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"(timed out after {timeout:.0f} s)"
    found = re.search(r"^(?:FAILED|ERROR) (\S+)", out.stdout, re.MULTILINE)
    return found.group(1) if found else None


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
    scratch = scratch_tree()
    verdicts = {}
    try:
        # A test that fails with no mutant on would kill every mutant falsely.
        failing = None if args.files_pass else run_mutant(scratch, "", args.files)
        if failing is not None:
            sys.exit(f"{failing} fails with no mutant on: fix it or leave its file out")
        for name in args.names.read_text().split():
            killer = run_mutant(scratch, name, args.files, args.timeout)
            verdicts[name] = 0 if killer is None else 1
            print(f"{name}: {'survived' if killer is None else 'killed by ' + killer}")
            record({name: verdicts[name]})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
