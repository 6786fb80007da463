"""README's table of Bayesian logistic regression against NUTS.

Each inference method is one user's command, run as a fresh process and timed by
the wall clock: ``ppl-models fit logreg --dataset DATA --inference M`` with the
model's defaults (its NUTS reference included). The table gives held-out accuracy,
log predictive density and calibration error, and for each VI fit how its
posterior compares with NUTS's, coefficient by coefficient: the ratio of sds
(median, range, and the share within 0.8 to 1.25) and the difference of means in
NUTS sds (median of the absolute values).

    python benchmarks/logreg_vs_nuts.py                       # breast cancer
    python benchmarks/logreg_vs_nuts.py --dataset wine --out runs/lr-wine
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

METHODS = ("map", "meanfield", "fullrank", "nuts")


def fit(dataset: str, method: str, out: Path) -> tuple[list[str], float, dict]:
    """Fit one method as a user would; its command, wall seconds and summary."""
    command = ["ppl-models", "fit", "logreg", "--dataset", dataset, "--inference",
               method, "--device", "cpu", "--out", str(out), "--overwrite"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ppl_models", *command[1:]],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stderr[-3000:]}")
    return command, seconds, json.loads((out / "summary.json").read_text())


def row(method: str, seconds: float, summary: dict) -> str:
    """One Markdown row of the table."""
    vs = summary.get("vs_nuts") or {}
    if "median_sd_ratio" in vs:
        sd = (f"{vs['median_sd_ratio']:.3f} ({vs['min_sd_ratio']:.3f} to "
              f"{vs['max_sd_ratio']:.3f})")  # fmt: skip
        within = f"{vs['share_sd_ratio_within_0.8_1.25']:.2f}"
    else:
        sd, within = "-", ""
    mean = vs.get("median_abs_mean_diff_in_sds")
    return (
        f"| {method} | {seconds:.0f} | {summary['fit_seconds']:.1f} "
        f"| {summary['heldout_accuracy']:.3f} | {summary['heldout_log_density']:.3f} "
        f"| {sd} | {within} | {'-' if mean is None else f'{mean:.3f}'} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="breast_cancer")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--out", type=Path, default=Path("runs/logreg_vs_nuts"))
    args = parser.parse_args(argv)
    lines = [
        f"{args.dataset}, the model's defaults; {platform.processor() or 'CPU'}, "
        f"torch {torch.__version__}, {datetime.date.today().isoformat()}.",
        "",
        "| inference | wall (s) | fit (s) | held-out accuracy | held-out log density "
        "| sd / NUTS sd, median (range) | share in 0.8-1.25 "
        "| abs(mean - NUTS mean) / NUTS sd, median |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    commands = []
    for method in args.methods:
        command, seconds, summary = fit(args.dataset, method, args.out / method)
        lines.append(row(method, seconds, summary))
        commands.append(f"- `{shlex.join(command)}`")
        print(f"{method}: done", file=sys.stderr, flush=True)
    text = "\n".join([*lines, "", *commands]) + "\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
