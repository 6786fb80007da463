"""Turn the tutorials into executed notebooks: ``make notebooks``.

Each ``tutorials/NN_*.py`` (Jupytext's percent format) becomes
``notebooks/NN_*.ipynb`` (git-ignored), executed by nbconvert in ``tutorials/``, as a
notebook opened there runs; the figures land in ``tutorials/output/`` as the prose
says. ``PPL_MODELS_TUTORIAL_QUICK=1`` runs the quick versions. Needs the
``notebooks`` extra (Jupytext, nbconvert, ipykernel).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "notebooks")
    parser.add_argument("tutorials", nargs="*", help="default: every tutorial")
    args = parser.parse_args()
    try:
        import jupytext
        from nbconvert.preprocessors import ExecutePreprocessor
    except ImportError:
        print('make notebooks needs: pip install -e ".[notebooks]"', file=sys.stderr)
        return 2
    sources = [Path(t) for t in args.tutorials] or sorted(
        (ROOT / "tutorials").glob("[0-9][0-9]_*.py")
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        start = time.perf_counter()
        notebook = jupytext.read(source)
        executor = ExecutePreprocessor(timeout=None, kernel_name="python3")
        executor.preprocess(notebook, {"metadata": {"path": str(ROOT / "tutorials")}})
        target = args.out / f"{source.stem}.ipynb"
        jupytext.write(notebook, target)
        print(f"{target}: executed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
