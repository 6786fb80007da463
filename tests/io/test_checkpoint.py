"""Checkpoints: atomic writes, safe loading, clear refusals."""

from __future__ import annotations

import collections
import pickle

import pytest
import torch

from ppl_models.errors import CheckpointError
from ppl_models.io.atomic import atomic_open
from ppl_models.io.checkpoint import load_checkpoint, load_state, save_checkpoint


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


def test_pickled_code_is_refused_even_where_torch_is_told_to_allow_it(
    tmp_path, monkeypatch
):
    # This variable makes torch.load unpickle anything unless the caller says
    # weights_only=True; a checkpoint from someone else must still not run code.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
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


def test_the_file_records_its_format_and_model_beside_the_payload(tmp_path):
    # Other tools read checkpoints with plain torch.load: the keys are the contract.
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "vae", {"epoch": 3})
    record = torch.load(path, weights_only=True)
    assert record == {"format": "ppl_models.checkpoint/1", "model": "vae", "epoch": 3}


def test_load_checkpoint_puts_tensors_on_the_device_asked_for(tmp_path):
    # "meta" stands in for a GPU: a device other than the one the file was saved on.
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "ppca", {"w": torch.ones(2, 3)})
    assert load_checkpoint(path, "ppca")["w"].device.type == "cpu"
    assert load_checkpoint(path, "ppca", device="meta")["w"].device.type == "meta"


def test_a_refused_file_is_named_with_the_first_line_of_the_reason(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "ppca", {"value": torch.ones(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError) as torch_error:
        torch.load(path, weights_only=True)
    reason = str(torch_error.value).strip().splitlines()[0]
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, "ppca")
    message = str(raised.value)
    assert message.startswith(f"{path} is not a readable checkpoint (truncated, ")
    assert message.endswith(f"plain tensors and numbers): {reason}")


def test_an_empty_file_is_refused_with_no_reason_to_quote(tmp_path):
    # torch raises an EOFError with an empty message on an empty file.
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, "ppca")
    assert str(raised.value).endswith("other than plain tensors and numbers): ")


def test_load_state_fills_a_module_or_says_the_checkpoint_does_not_fit(tmp_path):
    path = tmp_path / "ckpt.pt"
    module = torch.nn.Linear(2, 3)
    state = {k: torch.full_like(v, 0.5) for k, v in module.state_dict().items()}
    load_state(module, state, path)
    assert torch.equal(module.weight, torch.full((3, 2), 0.5))

    wrong = {"weight": torch.ones(2, 2), "extra": torch.ones(1)}
    with pytest.raises(CheckpointError) as raised:
        load_state(module, wrong, path)
    # torch's whole reason, on one line: the keys missing and unexpected, and the
    # shapes that differ.
    assert str(raised.value) == (
        f"{path} does not fit the run's configuration: Error(s) in loading "
        'state_dict for Linear: Missing key(s) in state_dict: "bias". Unexpected '
        'key(s) in state_dict: "extra". size mismatch for weight: copying a param '
        "with shape torch.Size([2, 2]) from checkpoint, the shape in current model "
        "is torch.Size([3, 2])."
    )
