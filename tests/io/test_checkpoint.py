"""Checkpoints: atomic writes, safe loading, clear refusals."""

from __future__ import annotations

import collections
import pickle

import pytest
import torch

from ppl_models.errors import CheckpointError
from ppl_models.io.atomic import atomic_open
from ppl_models.io.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    path = tmp_path / "ckpt.pt"
    state = {"weight": torch.arange(6.0).reshape(2, 3), "step": 7, "name": "x"}
    save_checkpoint(path, "ppca", {"state": state})
    record = load_checkpoint(path, "ppca")
    assert torch.equal(record["state"]["weight"], state["weight"])
    assert record["state"]["step"] == 7


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "ppca", {"value": torch.ones(2)})
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write(b"half a checkpoint")
        raise RuntimeError("crash mid-write")
    assert torch.equal(load_checkpoint(path, "ppca")["value"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "ppca", {"value": torch.ones(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path, "ppca")


class Sneaky:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_file_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save(
        {"format": "ppl_models.checkpoint/1", "model": "ppca", "x": Sneaky()}, path
    )
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path, "ppca")


def test_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps(collections.OrderedDict(a=1)))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, "ppca")


def test_other_files_and_models_are_refused(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a ppl_models checkpoint"):
        load_checkpoint(foreign, "ppca")
    ours = tmp_path / "vae.pt"
    save_checkpoint(ours, "vae", {})
    with pytest.raises(CheckpointError, match="checkpoint of model 'vae', not 'ppca'"):
        load_checkpoint(ours, "ppca")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt", "ppca")
