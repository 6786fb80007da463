"""Run directories: where a fit keeps its config, checkpoint, plots and summary.

::

    DIR/config.json      the arguments of the fit, enough to rebuild the model
    DIR/checkpoint.pt    parameters (and for long fits, optimizer and RNG state)
    DIR/metrics.csv      the loss trace: per step or per epoch
    DIR/summary.json     the numbers a user reads (strict JSON)
    DIR/*.png            plots
    DIR/.files.json      every file the run's commands wrote, so that --overwrite
                         removes them and nothing of the user's

A command writes a run directory only inside :func:`writing_run`, which holds the
directory's lock (see :mod:`ppl_models.io.run_lock`).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ppl_models.errors import CheckpointError, UsageError
from ppl_models.io.atomic import TEMPORARY_SUFFIX, atomic_open, read_json, write_json
from ppl_models.io.run_lock import HOLDER, LOCK, run_dir_lock

CONFIG = "config.json"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
MANIFEST = ".files.json"
#: the summary's note on numbers that were not finite, written as null
NONFINITE = "nonfinite"


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
    """The ``summary.json`` of a run directory, or an empty dict if there is none.

    :raises CheckpointError: if it is not a JSON object: it is damaged, and
        writing beside it would lose the numbers it held.
    """
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        return {}
    try:
        summary = read_json(path)
    except ValueError as error:
        summary = error
    if not isinstance(summary, dict):
        problem = (
            f"not valid JSON ({summary})"
            if isinstance(summary, ValueError)
            else f"a JSON {type(summary).__name__}, not an object"
        )
        raise CheckpointError(
            f"{path} is {problem}: it is damaged; remove it (the next fit, "
            "criticize or evaluate writes a new one) or restore it from a copy"
        )
    return summary


def update_summary(run_dir: str | Path, **entries: Any) -> dict[str, Any]:
    """Merge ``entries`` into ``summary.json`` (see :func:`write_summary`)."""
    summary = read_summary(run_dir)
    # Notes on entries that are not replaced still hold; the rest are redone.
    notes = {
        where: what
        for where, what in summary.pop(NONFINITE, {}).items()
        if re.split(r"[.\[]", where)[0] not in entries
    }
    summary.update(entries)
    return write_summary(run_dir, summary, notes)


def write_summary(
    run_dir: str | Path, summary: dict[str, Any], notes: dict[str, str] | None = None
) -> dict[str, Any]:
    """Write ``summary.json`` atomically as strict JSON; return what was written.

    A NaN or infinite number is written as ``null``, and the summary's ``nonfinite``
    entry says where it was and what it was (``{"test_elbo[2]": "nan"}``), so every
    JSON reader can load the file and no reader takes the gap for a number.

    :param notes: earlier such notes that still hold.
    """
    notes = dict(notes or {})
    strict = _finite_or_none(
        {k: v for k, v in summary.items() if k != NONFINITE}, "", notes
    )
    if notes:
        strict[NONFINITE] = notes
    write_json(Path(run_dir) / SUMMARY, strict)
    return strict


def _finite_or_none(value: Any, where: str, notes: dict[str, str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        notes[where] = str(value)
        return None
    if isinstance(value, dict):
        return {
            k: _finite_or_none(v, f"{where}.{k}" if where else str(k), notes)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_finite_or_none(v, f"{where}[{i}]", notes) for i, v in enumerate(value)]
    return value


def holds_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run (of any model) already."""
    return any((Path(run_dir) / name).exists() for name in (CONFIG, CHECKPOINT))


@contextmanager
def writing_run(run_dir: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Hold ``run_dir``'s lock while the body writes it, and keep its file list.

    On entry the temporary files of a writer that was killed are removed, and with
    ``replace`` every file an earlier run wrote. On exit, even on an error, the files
    the body created or changed join the list in ``.files.json``.

    :raises UsageError: if another process is writing ``run_dir``.
    """
    run_dir = Path(run_dir)
    with run_dir_lock(run_dir):
        for stale in run_dir.glob(f".*{TEMPORARY_SUFFIX}"):
            stale.unlink(missing_ok=True)
        if replace:
            for name in {*_manifest(run_dir), CONFIG, SUMMARY, CHECKPOINT, MANIFEST}:
                (run_dir / name).unlink(missing_ok=True)
        before = _file_times(run_dir)
        try:
            yield run_dir
        finally:
            after = _file_times(run_dir)
            written = {n for n, t in after.items() if before.get(n) != t}
            listed = sorted((set(_manifest(run_dir)) | written) & set(after))
            if listed or (run_dir / MANIFEST).exists():
                write_json(run_dir / MANIFEST, listed)


def _manifest(run_dir: Path) -> list[str]:
    try:
        names = read_json(run_dir / MANIFEST)
    except (OSError, ValueError):
        return []
    # Only plain names: a hand-edited list must not reach outside the directory.
    return [n for n in names if isinstance(n, str) and n == Path(n).name]


def _file_times(run_dir: Path) -> dict[str, int]:
    own = {LOCK, HOLDER, MANIFEST}
    return {
        entry.name: entry.stat().st_mtime_ns
        for entry in run_dir.iterdir()
        if entry.is_file() and entry.name not in own
    }


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
