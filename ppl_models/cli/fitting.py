"""``ppl-models fit``: the options every model shares, and the run itself."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from ppl_models.cli.report import summary_lines
from ppl_models.device import resolve_device
from ppl_models.errors import UsageError
from ppl_models.inference.compiled import COMPILE_MODES
from ppl_models.io.run_dir import (
    CHECKPOINT,
    SUMMARY,
    holds_run,
    prepare_run_dir,
    read_config,
    writing_run,
)
from ppl_models.registry import ModelSpec
from ppl_models.validation import MAX_SEED, check_seed


def headline(summary: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The summary's entries named in ``keys``, where present; per-epoch lists give
    their last value.
    """
    picked = {key: summary[key] for key in keys if key in summary}
    return {k: v[-1] if isinstance(v, list) and v else v for k, v in picked.items()}


def add_common_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """``--seed``, ``--device`` and ``--out``, shared by every model's ``fit``."""
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help=f"seeds the data, the fit and its checks (0 to {MAX_SEED})",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="the run directory"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out, removing the files it wrote",
    )
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

    The device and the output directory are checked before any work, and the
    directory is locked while the fit writes it. A run already there, of any model,
    is replaced only with ``--overwrite`` and continued only with ``--resume``. If
    the fit fails before writing a checkpoint, a directory it created is removed.
    """
    device = resolve_device(args.device)
    existed = args.out.exists()
    run_dir = prepare_run_dir(args.out)
    # A model that cannot resume has no --resume option at all.
    resume = getattr(args, "resume", None)
    try:
        with writing_run(run_dir, replace=args.overwrite):
            check_run_dir(spec, run_dir, resume=resume, overwrite=args.overwrite)
            summary = spec.fit_run(args, run_dir, device)
    except BaseException:
        # A directory this fit created, with no checkpoint to resume from, holds
        # nothing worth keeping: at most a config and a summary of a run that failed.
        if not existed and not (run_dir / CHECKPOINT).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if not quiet:
        print(f"fitted {spec.name} into {run_dir} (summary: {run_dir / SUMMARY})")
        for line in summary_lines(summary, spec.headline_keys):
            print(line)
    return summary


def check_run_dir(
    spec: type[ModelSpec], run_dir: Path, *, resume: bool | None, overwrite: bool
) -> None:
    """Refuse to fit into ``run_dir`` where that would lose or mix up a run.

    :param resume: whether ``--resume`` was given; None if the model cannot resume.
    :raises UsageError: for a run already there without ``--resume`` or
        ``--overwrite``, or a ``--resume`` of another model's run.
    """
    if resume and overwrite:
        raise UsageError(
            "--resume continues the run in --out and --overwrite replaces it: "
            "give one of them"
        )
    if resume:
        if not holds_run(run_dir):
            raise UsageError(f"--resume: {run_dir} holds no checkpoint to resume")
        model = read_config(run_dir)["model"]
        if model != spec.name:
            raise UsageError(
                f"--resume: {run_dir} holds a run of model {model!r}, not {spec.name!r}"
            )
    elif holds_run(run_dir) and not overwrite:
        model = _model_of(run_dir)
        can_resume = resume is not None and model == spec.name
        to_resume = "--resume to continue it, " if can_resume else ""
        raise UsageError(
            f"{run_dir} already holds a run of model {model!r}: use {to_resume}"
            "--overwrite to replace it, or another --out"
        )


def _model_of(run_dir: Path) -> str:
    try:
        return read_config(run_dir)["model"]
    except UsageError:
        return "unknown"


def _seed(text: str) -> int:
    """``--seed``: an integer from 0 to 2**32 - 1, or argparse's usage error."""
    try:
        return check_seed(int(text))
    except (ValueError, UsageError):
        raise argparse.ArgumentTypeError(
            f"seed must be an integer from 0 to {MAX_SEED}, got {text!r}"
        ) from None
