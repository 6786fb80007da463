"""Checkpoints as plain state dicts, written atomically and loaded without pickle.

A checkpoint is a dict of tensors, numbers, strings and nested dicts/lists of those,
saved by ``torch.save`` and loaded with ``weights_only=True``: a file from someone
else can hold data but never code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ppl_models.errors import CheckpointError
from ppl_models.io.atomic import atomic_write

FORMAT = "ppl_models.checkpoint/1"


def save_checkpoint(path: str | Path, model: str, payload: dict[str, Any]) -> None:
    """Save ``payload`` for the model named ``model`` atomically to ``path``."""
    record = {"format": FORMAT, "model": model, **payload}
    atomic_write(path, lambda handle: torch.save(record, handle))


def load_checkpoint(
    path: str | Path, model: str, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` for ``model``.

    :raises CheckpointError: if the file is missing, truncated, not a checkpoint of
        this zoo, holds anything but plain data, or belongs to another model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        record = torch.load(path, map_location=device, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
    ) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated, corrupted, or holding "
            f"objects other than plain tensors and numbers): {first_line}"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ppl_models checkpoint")
    if record.get("model") != model:
        raise CheckpointError(
            f"{path} is a checkpoint of model {record.get('model')!r}, not {model!r}"
        )
    return record


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
