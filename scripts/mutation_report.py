"""Score a finished `mutmut run` and hold its survivors against MUTATION.md.

Reads mutmut's result files under ``mutants/`` and prints, per source file, how many
mutants were killed, survived or had no test, and the mutation score: killed (a test
failed, or the tests ran past their time limit) over all mutants that are not
recorded as equivalent in MUTATION.md. Every survivor must either be killed by a test
or appear in MUTATION.md's table of equivalent mutants with a reason; the script
lists the ones that do neither and exits 1 if there are any. A row whose reason
starts with "killed by" records a survivor (or a mutant mutmut found no test for)
that a test kills when it is run against it (mutmut runs, per mutant, only the tests
its coverage data saw call the mutated function: it misses those that use the result
through a module-scoped fixture or at import, and those newer than its coverage
data): it counts as killed.

The score is given twice: over every mutant, where one not run yet counts against
it (a lower bound while a run is unfinished), and over the mutants run.

A pass over part of the code stands on earlier ones, recorded in
``mutation-results.json``: each earlier pass's exit code per mutant, by the commit it
ran on, and files that a pass finished in full (every mutant killed or explained).
A mutant not run in this pass takes an earlier verdict ("carried") if the source of
its function is the same at that pass's commit as now; a mutant of a function that
changed since counts as not run. ``--save`` adds this pass's results to the file.

    python scripts/mutation_report.py                  # after `mutmut run`
    python scripts/mutation_report.py --markdown       # the table for MUTATION.md
    python scripts/mutation_report.py --save COMMIT    # record this pass, run at COMMIT
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILLED = {1, 3, 24, -24, 36, 152, 255}  # test failures and time-outs
SURVIVED = {0}
NO_TESTS = {5, 33}
# "| `ppl_models.x.x_f__mutmut_3` | reason |" rows of MUTATION.md's table
EQUIVALENT_ROW = re.compile(r"^\|\s*`([\w.]+__mutmut_\d+)`\s*\|\s*(.+?)\s*\|\s*$")


def load_results(mutants: Path) -> dict[str, dict[str, int | None]]:
    """Source file -> {mutant name: exit code} from mutmut's ``.meta`` files."""
    results = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            results[str(meta.relative_to(mutants))[: -len(".meta")]] = codes
    return results


def load_equivalents(record: Path) -> dict[str, str]:
    """Mutant name -> reason, from the equivalent-mutant table of ``record``."""
    if not record.is_file():
        return {}
    rows = (EQUIVALENT_ROW.match(line) for line in record.read_text().splitlines())
    return {row.group(1): row.group(2) for row in rows if row}


def function_sources(source: str) -> dict[str, str]:
    """mutmut's name for each function and method of ``source`` (``x_f``,
    ``xǁClassǁmethod``) -> its source text, decorators included.
    """
    tree = ast.parse(source)
    found = {}

    def text(node: ast.AST) -> str:
        decorators = [ast.get_source_segment(source, d) for d in node.decorator_list]
        return "\n".join([*map(str, decorators), ast.get_source_segment(source, node)])

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[f"x_{node.name}"] = text(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found[f"xǁ{node.name}ǁ{item.name}"] = text(item)
    return found


def unchanged_functions(path: str, commit: str) -> set[str]:
    """mutmut's names of the functions of ``path`` whose source is the same at
    ``commit`` as in the working tree."""
    then = subprocess.run(
        ["git", "show", f"{commit}:{path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    old, new = function_sources(then), function_sources((ROOT / path).read_text())
    return {name for name, text in new.items() if old.get(name) == text}


def save_pass(
    path: Path, earlier: dict, commit: str, results: dict[str, dict[str, int | None]]
) -> dict:
    """Add the exit codes of the mutants run in this pass, at ``commit``, to the
    file of earlier passes; return its new content."""
    codes = {
        name: code
        for file_codes in results.values()
        for name, code in file_codes.items()
        if code is not None
    }
    passes = {**earlier.get("passes", {}), commit: pack(codes)}
    updated = {**earlier, "passes": passes}
    path.write_text(json.dumps(updated, separators=(",", ":"), sort_keys=True) + "\n")
    return updated


def carried_codes(
    earlier: dict, results: dict[str, dict[str, int | None]]
) -> dict[str, int]:
    """Mutant -> exit code from an earlier pass, for the mutants of functions whose
    source has not changed since that pass. A file an earlier pass finished in full
    carries "killed" (code 1) for every mutant of its unchanged functions: those it
    did not kill are listed in MUTATION.md as equivalent."""
    carried: dict[str, int] = {}
    unchanged: dict[tuple[str, str], set[str]] = {}

    def same(path: str, commit: str, name: str) -> bool:
        if (path, commit) not in unchanged:
            unchanged[path, commit] = unchanged_functions(path, commit)
        return function_of(name) in unchanged[path, commit]

    by_module = {path.removesuffix(".py").replace("/", "."): path for path in results}
    for complete in earlier.get("complete", []):
        for path in complete["files"]:
            for name in results.get(path, {}):
                if same(path, complete["commit"], name):
                    carried[name] = 1
    for commit, packed in earlier.get("passes", {}).items():
        for name, code in unpack(packed).items():
            path = by_module.get(name.rsplit(".", 1)[0])
            if path is not None and same(path, commit, name):
                carried[name] = code
    return carried


def pack(codes: dict[str, int]) -> dict[str, dict[str, list[int]]]:
    """Exit codes by mutant as ``{function: {code: [mutant numbers]}}``, a tenth of
    the size of one entry per mutant name."""
    packed: dict[str, dict[str, list[int]]] = {}
    for name, code in sorted(codes.items()):
        function, number = name.rsplit("__mutmut_", 1)
        packed.setdefault(function, {}).setdefault(str(code), []).append(int(number))
    for by_code in packed.values():
        for numbers in by_code.values():
            numbers.sort()
    return packed


def unpack(packed: dict[str, dict[str, list[int]]]) -> dict[str, int]:
    """:func:`pack`'s inverse: exit code by mutant name."""
    return {
        f"{function}__mutmut_{number}": int(code)
        for function, by_code in packed.items()
        for code, numbers in by_code.items()
        for number in numbers
    }


def function_of(mutant: str) -> str:
    """``pkg.mod.x_f__mutmut_3`` -> ``x_f``."""
    return mutant.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]


def classify(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "not run" if code is None else f"other ({code})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    parser.add_argument("--record", type=Path, default=ROOT / "MUTATION.md")
    parser.add_argument(
        "--markdown", action="store_true", help="print the per-file table as Markdown"
    )
    parser.add_argument(
        "--earlier", type=Path, default=ROOT / "mutation-results.json",
        help="earlier passes' results",
    )  # fmt: skip
    parser.add_argument(
        "--save", metavar="COMMIT", help="add this pass, run at COMMIT, to --earlier"
    )
    parser.add_argument(
        "--ran-at",
        metavar="COMMIT",
        help="the commit this pass ran on: its results count only for functions "
        "unchanged since (the rest are not run as the code stands now)",
    )
    args = parser.parse_args(argv)
    results = load_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}: run `mutmut run` first")
        return 2
    if args.ran_at:
        for path, codes in results.items():
            same = unchanged_functions(path, args.ran_at)
            for name in codes:
                if function_of(name) not in same:
                    codes[name] = None
    equivalents = load_equivalents(args.record)
    earlier = json.loads(args.earlier.read_text()) if args.earlier.is_file() else {}
    if args.save:
        earlier = save_pass(args.earlier, earlier, args.save, results)
    carried = carried_codes(earlier, results)

    totals: Counter[str] = Counter()
    unexplained = []
    rows = []
    for path, codes in results.items():
        counts: Counter[str] = Counter()
        for name, code in codes.items():
            verdict = classify(code)
            if verdict == "not run" and name in carried:
                verdict = classify(carried[name])
                if name in equivalents and not equivalents[name].startswith("killed"):
                    verdict = "equivalent"
                elif verdict == "killed" or name in equivalents:
                    verdict = "carried"
            if verdict in ("survived", "no tests") and equivalents.get(
                name, ""
            ).startswith("killed by"):
                verdict = "killed"
            elif verdict in ("survived", "no tests") and name in equivalents:
                verdict = "equivalent"
            counts[verdict] += 1
            if verdict not in ("killed", "carried", "equivalent", "not run"):
                unexplained.append((name, verdict))
        totals.update(counts)
        rows.append((path, counts))
    stale = sorted(
        name
        for name in equivalents
        if not any(name in codes for codes in results.values())
    )

    def score(counts: Counter[str], run_only: bool = False) -> str:
        scored = sum(counts.values()) - counts["equivalent"]
        if run_only:
            scored -= counts["not run"]
        killed = counts["killed"] + counts["carried"]
        return f"{100 * killed / scored:.1f}%" if scored else "-"

    columns = ("killed", "carried", "survived", "no tests", "equivalent", "not run")
    if args.markdown:
        header = " | ".join(columns)
        print(f"| file | mutants | {header} | score | score of those run |")
        print("| --- " * (len(columns) + 4) + "|")
        for path, counts in rows + [("**all**", totals)]:
            cells = " | ".join(str(counts[c]) for c in columns)
            scores = f"{score(counts)} | {score(counts, run_only=True)}"
            print(f"| {path} | {sum(counts.values())} | {cells} | {scores} |")
    else:
        for path, counts in rows:
            cells = "  ".join(f"{c} {counts[c]}" for c in columns if counts[c])
            print(f"{path:45s} {score(counts):>7s}  {cells}")
        print(f"{'all':45s} {score(totals):>7s}  total {sum(totals.values())}")
        print(f"{'all, of those run':45s} {score(totals, run_only=True):>7s}")
    if stale:
        print(f"\n{len(stale)} equivalent mutant(s) in {args.record.name} are gone:")
        print("\n".join(f"  {name}" for name in stale))
    if totals["not run"]:
        print(f"\n{totals['not run']} mutant(s) not run: the pass is not complete")
    if unexplained:
        print(f"\n{len(unexplained)} mutant(s) neither killed nor explained:")
        print("\n".join(f"  {name} ({verdict})" for name, verdict in unexplained))
        print("see each with `mutmut show NAME`")
    return 1 if unexplained or totals["not run"] else 0


if __name__ == "__main__":
    sys.exit(main())
