"""``ppl-models fit``: the options every model shares, and the run itself."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import MISSING, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ppl_models import distributed
from ppl_models.cli.options import add_options, from_namespace, given_settings
from ppl_models.cli.report import summary_lines
from ppl_models.device import resolve_device
from ppl_models.errors import UsageError
from ppl_models.io.run_dir import (
    CHECKPOINT,
    CONFIG,
    SUMMARY,
    holds_run,
    prepare_run_dir,
    read_config,
    writing_run,
)
from ppl_models.registry import ModelSpec, RunOptions
from ppl_models.run_config import read_run_config, resumed
from ppl_models.settings import setting, settings_of
from ppl_models.threads import THREADS_HELP, parse_threads, set_fit_threads


def headline(summary: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The summary's entries named in ``keys``, where present; per-epoch lists give
    their last value.
    """
    picked = {key: summary[key] for key in keys if key in summary}
    return {k: v[-1] if isinstance(v, list) and v else v for k, v in picked.items()}


@dataclass(frozen=True, kw_only=True)
class FitOptions:
    """The options of ``fit`` that are neither the model's nor the run's."""

    device: str = setting("auto", "auto, cpu, cuda or cuda:N (default: auto)")
    out: Path = setting(MISSING, "the run directory", metavar="DIR")
    overwrite: bool = setting(
        False, "replace the run already in --out, removing the files it wrote"
    )
    threads: int | None = setting(None, THREADS_HELP, metavar="N", parse=parse_threads)


def add_fit_options(parser: argparse.ArgumentParser, spec: type[ModelSpec]) -> None:
    """``fit NAME``'s options: the model's settings, then ``--device``, ``--out``,
    ``--overwrite``, ``--resume`` (for a model that can resume) and ``--compile``.
    """
    add_options(parser, spec.config_class)
    add_options(parser, FitOptions)
    add_options(parser, RunOptions, leave_out=() if spec.can_resume else ["resume"])


def fit_config(
    spec: type[ModelSpec], args: argparse.Namespace, run_dir: Path, resume: bool
) -> Any:
    """The config of a fit: the command line's, or with ``--resume`` the run's
    ``config.json`` with only the resumable settings from the command line.
    """
    given = from_namespace(spec.config_class, args)
    if not resume:
        return given
    saved = read_run_config(spec.config_class, run_dir)
    check_resume_options(saved, given, given_settings(args))
    return resumed(saved, given)


def check_resume_options(saved: Any, given: Any, named: set[str]) -> None:
    """Refuse a ``--resume`` whose command line asks for a setting the run cannot
    change: it would go on with the run's own value and say nothing.

    :param named: the settings whose options were on the command line.
    :raises UsageError: naming each such option, its value and the run's.
    """
    changed = [
        f"{s.flag} {getattr(given, s.name)!r} (the run has {getattr(saved, s.name)!r})"
        for s in settings_of(type(saved))
        if s.name in named
        and s.recorded
        and not s.resumable
        and getattr(given, s.name) != getattr(saved, s.name)
    ]
    if changed:
        can = [s.flag for s in settings_of(type(saved)) if s.resumable]
        raise UsageError(
            f"--resume goes on with the run's own settings, but the command line "
            f"changes {', '.join(changed)}: leave those options out (a resume can "
            f"change only {', '.join(can)}), or fit anew with --overwrite or "
            "another --out"
        )


def run_fit(
    spec: type[ModelSpec], args: argparse.Namespace, quiet: bool = False
) -> dict[str, Any]:
    """Fit ``spec``'s model as ``args`` (parsed with :func:`add_fit_options`) say
    into ``args.out``; return the summary.

    The device and the output directory are checked before any work, and the
    directory is locked while the fit writes it. A run already there, of any model,
    is replaced only with ``--overwrite`` and continued only with ``--resume``. If
    the fit fails before writing a checkpoint, a directory it created is removed.
    """
    fit = from_namespace(FitOptions, args)
    options = from_namespace(RunOptions, args)
    if not distributed.launched():
        return _fit_into(spec, args, fit, options, resolve_device(fit.device), quiet)
    if not spec.data_parallel:
        raise UsageError(
            f"model {spec.name!r} trains on all its data at every step, so it has no "
            "data-parallel training: run it without torchrun"
        )
    if options.compile is not None:
        raise UsageError("--compile is not supported under torchrun yet: leave it out")
    device = distributed.start(fit.device)
    try:
        if distributed.current().writes:
            return _fit_into(spec, args, fit, options, device, quiet)
        return _fit_beside(spec, args, fit, options, device)
    finally:
        distributed.stop()


def _fit_beside(
    spec: type[ModelSpec],
    args: argparse.Namespace,
    fit: FitOptions,
    options: RunOptions,
    device: torch.device,
) -> dict[str, Any]:
    """A rank other than 0 trains beside rank 0 and writes nothing of the run: it
    reads the run's config and checkpoint, and its own files go to a folder that is
    removed when it is done (no criticism: rank 0 does that alone)."""
    with tempfile.TemporaryDirectory(prefix="ppl-models-rank-") as scratch:
        if options.resume:
            for name in (CONFIG, CHECKPOINT):
                shutil.copy2(fit.out / name, Path(scratch) / name)
        config = fit_config(spec, args, fit.out, options.resume)
        # No criticism and no TensorBoard log here: rank 0 writes those.
        quiet = {"no_criticize": True, "tensorboard": False}
        config = replace(
            config, **{k: v for k, v in quiet.items() if hasattr(config, k)}
        )
        set_fit_threads(config, device, fit.threads)
        return spec.fit_run(config, Path(scratch), device, options)


def _fit_into(
    spec: type[ModelSpec],
    args: argparse.Namespace,
    fit: FitOptions,
    options: RunOptions,
    device: torch.device,
    quiet: bool,
) -> dict[str, Any]:
    existed = fit.out.exists()
    run_dir = prepare_run_dir(fit.out)
    # A model that cannot resume has no --resume option at all.
    resume = options.resume if spec.can_resume else None
    own_files = (CONFIG, SUMMARY)
    times = {name: _mtime(run_dir / name) for name in own_files}
    try:
        with writing_run(run_dir, replace=fit.overwrite):
            check_run_dir(spec, run_dir, resume=resume, overwrite=fit.overwrite)
            config = fit_config(spec, args, run_dir, options.resume)
            set_fit_threads(config, device, fit.threads)
            summary = spec.fit_run(config, run_dir, device, options)
    except BaseException:
        # A directory this fit created, with no checkpoint to resume from, holds
        # nothing worth keeping: at most a config and a summary of a run that failed.
        if not (run_dir / CHECKPOINT).exists():
            if not existed:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                # In a folder that was there, remove the config and summary this
                # fit wrote: left behind, they would pass for a run to --resume.
                for name in own_files:
                    if _mtime(run_dir / name) != times[name]:
                        (run_dir / name).unlink(missing_ok=True)
        raise
    if not quiet:
        print(f"fitted {spec.name} into {run_dir} (summary: {run_dir / SUMMARY})")
        for line in summary_lines(summary, spec.headline_keys):
            print(line)
    return summary


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def check_run_dir(
    spec: type[ModelSpec], run_dir: Path, *, resume: bool | None, overwrite: bool
) -> None:
    """Refuse to fit into ``run_dir`` where that would lose or mix up a run.

    :param resume: whether ``--resume`` was given; None if the model cannot resume.
    :raises UsageError: for a run already there without ``--resume`` or
        ``--overwrite``, or a ``--resume`` of another model's run or of a run
        without a checkpoint.
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
        if not (run_dir / CHECKPOINT).is_file():
            # Its config is there, but the fit stopped before its first checkpoint.
            raise UsageError(f"--resume: {run_dir} holds no checkpoint to resume")
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
