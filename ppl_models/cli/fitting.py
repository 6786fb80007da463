"""``ppl-models fit``: the options every model shares, and the run itself."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ppl_models.device import resolve_device
from ppl_models.inference.compiled import COMPILE_MODES
from ppl_models.io.run_dir import SUMMARY, prepare_run_dir
from ppl_models.registry import ModelSpec

#: summary entries printed after a fit, when present
HEADLINE = (
    "final_loss",
    "axis_cosine_true",
    "axis_cosine_closed_form",
    "replay_cov_rel_error",
    "test_elbo",
    "fit_seconds",
)


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's headline numbers; per-epoch lists give their last value."""
    picked = {key: summary[key] for key in HEADLINE if key in summary}
    return {k: v[-1] if isinstance(v, list) and v else v for k, v in picked.items()}


def add_common_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """``--seed``, ``--device`` and ``--out``, shared by every model's ``fit``."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        help="trace the ELBO into a graph and compile it with this torch.compile "
        "mode: faster steps after a compile of some seconds (default: plain Pyro)",
    )


def run_fit(
    spec: type[ModelSpec], args: argparse.Namespace, quiet: bool = False
) -> dict[str, Any]:
    """Fit ``spec``'s model as ``args`` say into ``args.out``; return the summary.

    The device and the output directory are checked before any work. If the fit
    fails on bad input before writing anything, a directory it created is removed.
    """
    device = resolve_device(args.device)
    existed = args.out.exists()
    run_dir = prepare_run_dir(args.out)
    try:
        summary = spec.fit_run(args, run_dir, device)
    except BaseException:
        if not existed and not any(run_dir.iterdir()):
            os.rmdir(run_dir)
        raise
    if not quiet:
        print(f"fitted {spec.name} into {run_dir} (summary: {run_dir / SUMMARY})")
        for key, value in headline(summary).items():
            print(f"  {key}: {value}")
    return summary
