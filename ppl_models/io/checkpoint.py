"""Checkpoints as plain state dicts, written atomically and loaded without pickle.

A checkpoint is a dict of tensors, numbers, strings and nested dicts/lists of those,
saved by ``torch.save`` and loaded with ``weights_only=True``: a file from someone
else can hold data but never code.
"""

from __future__ import annotations

import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from ppl_models.errors import CheckpointError
from ppl_models.io.atomic import atomic_write
from ppl_models.io.run_dir import CHECKPOINT, CONFIG, read_config

FORMAT = "ppl_models.checkpoint/1"


def save_checkpoint(path: str | Path, model: str, payload: dict[str, Any]) -> None:
    """Save ``payload`` for the model named ``model`` atomically to ``path``.

    A checkpoint written into a run directory also keeps, as ``settings``, the
    ``config.json`` beside it, so that an edit of that file afterwards is found
    (:func:`ppl_models.run_config.check_config_unedited`) instead of obeyed by one
    command and ignored by another.
    """
    path = Path(path)
    record = {"format": FORMAT, "model": model, **payload}
    settings = _run_config_beside(path, model)
    if settings is not None:
        record["settings"] = settings
    atomic_write(path, lambda handle: torch.save(record, handle))


def _run_config_beside(path: Path, model: str) -> dict[str, Any] | None:
    if path.name != CHECKPOINT or not (path.parent / CONFIG).is_file():
        return None
    config = read_config(path.parent)
    return config if config.get("model") == model else None


def load_checkpoint(
    path: str | Path, model: str, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` for ``model``.

    Before anything is unpickled, every member of the archive is checked against
    the CRC-32 that ``torch.save`` wrote beside it, so a flipped bit is refused
    rather than loaded as a wrong weight.

    :raises CheckpointError: if the file is missing, truncated, damaged, not a
        checkpoint of this zoo, holds anything but plain data, holds NaN or
        infinite values, or belongs to another model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    check_archive(path)
    try:
        record = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        # torch's message goes on to suggest weights_only=False: never do that with
        # a file of unknown origin, as unpickling it can run any code.
        raise CheckpointError(
            f"{path} holds objects other than tensors, numbers and strings, so it "
            "was not written by ppl_models; it is not loaded, as loading such a "
            "file can run code"
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"{path} is not a readable checkpoint: {first_line or type(error).__name__}"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ppl_models checkpoint")
    if record.get("model") != model:
        raise CheckpointError(
            f"{path} is a checkpoint of model {record.get('model')!r}, not {model!r}"
        )
    where = first_nonfinite(record, skip=NONFINITE_ALLOWED)
    if where is not None:
        raise CheckpointError(
            f"{path} holds NaN or infinite values in {where}: it is damaged (a fit "
            "never saves them); use a copy from before, or fit again"
        )
    return record


#: entries whose numbers may be non-finite: a run's record of its losses
NONFINITE_ALLOWED = ("losses", "history")


def check_archive(path: Path) -> None:
    """Refuse ``path`` unless it is a whole zip archive whose every member matches
    its CRC-32 (``torch.save`` writes one per member).

    :raises CheckpointError: saying whether it is truncated or damaged.
    """
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a checkpoint: it is not the archive torch.save writes "
            "(a truncated copy, or another kind of file)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as error:
        raise CheckpointError(f"{path} is a damaged archive: {error}") from None
    if damaged is not None:
        raise CheckpointError(
            f"{path} is damaged: its member {damaged} fails its CRC-32 check, so "
            "its bytes changed after it was written (a disk or copy error); use a "
            "copy from before, or fit again"
        )


def check_entries(
    record: dict[str, Any], entries: dict[str, type | tuple[type, ...]], path: Any
) -> dict[str, Any]:
    """``record`` if it has each of ``entries`` (name -> type), else a
    :class:`CheckpointError` naming what is missing or of the wrong type."""
    missing = [name for name in entries if name not in record]
    if missing:
        raise CheckpointError(
            f"{path} lacks the entries {', '.join(missing)}: it is damaged or was "
            "written by another program"
        )
    for name, kind in entries.items():
        value = record[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(
                f"{path}: entry {name} is a {type(value).__name__}, which a "
                "checkpoint of this zoo never holds there"
            )
    return record


def first_nonfinite(
    obj: Any, skip: tuple[str, ...] = (), where: str = ""
) -> str | None:
    """Where the first NaN or infinite value in the floating-point tensors of
    ``obj`` (nested dicts and lists) is, as ``entry['key'][i]``; None if there is
    none. Entries named in ``skip`` at the top level are not looked at.
    """
    if isinstance(obj, torch.Tensor):
        # (a tensor on the meta device has no values to look at)
        bad = (
            obj.is_floating_point()
            and obj.device.type != "meta"
            and not bool(torch.isfinite(obj).all())
        )
        return where if bad else None
    if isinstance(obj, dict):
        items = [(k, v) for k, v in obj.items() if not (not where and k in skip)]
        for key, value in items:
            found = first_nonfinite(
                value, skip, f"{where}[{key!r}]" if where else str(key)
            )
            if found is not None:
                return found
    if isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            found = first_nonfinite(value, skip, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def load_state(
    module: torch.nn.Module, state: dict[str, Any], path: str | Path
) -> None:
    """``module.load_state_dict(state)``, or a :class:`CheckpointError` saying that
    the checkpoint at ``path`` does not fit the module's configuration.
    """
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError) as error:
        # torch lists the missing and unexpected keys and the wrong shapes on the
        # lines after its first: keep them, on one line.
        reason = " ".join(line.strip() for line in str(error).splitlines())
        raise CheckpointError(
            f"{path} does not fit the run's configuration: {reason.strip()}"
        ) from None
