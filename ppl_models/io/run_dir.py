"""Run directories: where a fit keeps its config, checkpoint, plots and summary.

::

    DIR/config.json      the arguments of the fit, enough to rebuild the model
    DIR/checkpoint.pt    parameters (and for long fits, optimizer and RNG state)
    DIR/losses.csv       the loss trace
    DIR/summary.json     the numbers a user reads
    DIR/*.png            plots
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ppl_models.errors import CheckpointError, UsageError
from ppl_models.io.atomic import atomic_open, read_json, write_json

CONFIG = "config.json"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"


def prepare_run_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and prove it is writable, before any work starts.

    :raises UsageError: naming the directory and the reason it cannot be written.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"cannot write to output directory {path}: {reason}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"cannot write to output directory {path}: not writable")
    return path


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run directory.

    :raises CheckpointError: if ``run_dir`` is not a run directory.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory: it has no {CONFIG}")
    try:
        config = read_json(path)
    except ValueError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{path} does not name a model")
    return config


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a run directory, or an empty dict if there is none."""
    path = Path(run_dir) / SUMMARY
    return read_json(path) if path.is_file() else {}


def update_summary(run_dir: str | Path, **entries: Any) -> dict[str, Any]:
    """Merge ``entries`` into ``summary.json`` (written atomically); return it."""
    summary = read_summary(run_dir)
    summary.update(entries)
    write_json(Path(run_dir) / SUMMARY, summary)
    return summary


def write_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    """Write ``config.json``."""
    write_json(Path(run_dir) / CONFIG, config)


def write_table(
    run_dir: str | Path, name: str, columns: dict[str, list[float]]
) -> None:
    """Write equal-length columns as a CSV file with a header row."""
    keys = list(columns)
    rows = zip(*(columns[k] for k in keys), strict=True)
    lines = [",".join(keys)] + [",".join(f"{v:.9g}" for v in row) for row in rows]
    write_text(Path(run_dir) / name, "\n".join(lines) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
