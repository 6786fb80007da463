"""Checkpoints: atomic writes, safe loading, clear refusals."""

from __future__ import annotations

import collections
import pickle
import struct
import zipfile

import pytest
import torch

from ppl_models.errors import CheckpointError
from ppl_models.io.atomic import atomic_open
from ppl_models.io.checkpoint import (
    check_entries,
    first_nonfinite,
    load_checkpoint,
    load_state,
    save_checkpoint,
)


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


def not_an_archive(path) -> str:
    return (
        f"{path} is not a checkpoint: it is not the archive torch.save writes (a "
        "truncated copy, or another kind of file)"
    )


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "ppca", {"value": torch.ones(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, "ppca")
    assert str(raised.value) == not_an_archive(path)


class Sneaky:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_file_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save(
        {"format": "ppl_models.checkpoint/1", "model": "ppca", "x": Sneaky()}, path
    )
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, "ppca")
    # torch's own message suggests weights_only=False: the zoo never does
    assert str(raised.value) == (
        f"{path} holds objects other than tensors, numbers and strings, so it was "
        "not written by ppl_models; it is not loaded, as loading such a file can "
        "run code"
    )


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
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, "ppca")
    # torch's own message suggests weights_only=False: the zoo never does
    assert str(raised.value) == (
        f"{path} holds objects other than tensors, numbers and strings, so it was "
        "not written by ppl_models; it is not loaded, as loading such a file can "
        "run code"
    )


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


@pytest.mark.parametrize("content", [b"", b"hello\n", bytes(range(256)) * 20])
def test_a_file_that_is_not_an_archive_is_refused_before_unpickling(tmp_path, content):
    # torch.load reads a text file as an old-style pickle and fails with KeyError
    path = tmp_path / "ckpt.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, "ppca")
    assert str(raised.value) == not_an_archive(path)


def flip_a_bit_in_member(path, member: str) -> None:
    """Flip one bit in the middle of an (uncompressed) member's bytes."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_tensor_is_refused_by_its_crc(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "ppca", {"w": torch.ones(1000)})
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size).filename
    flip_a_bit_in_member(path, member)
    # torch itself loads it, with one wrong weight
    assert not torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(1000))
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, "ppca")
    assert str(raised.value) == (
        f"{path} is damaged: its member {member} fails its CRC-32 check, so its bytes "
        "changed after it was written (a disk or copy error); use a copy from "
        "before, or fit again"
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_where(tmp_path, bad):
    path = tmp_path / "ckpt.pt"
    weight = torch.ones(2, 3)
    weight[1, 2] = bad
    save_checkpoint(path, "ppca", {"model_state": {"w": torch.ones(2), "v": weight}})
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, "ppca")
    assert str(raised.value) == (
        f"{path} holds NaN or infinite values in model_state['v']: it is damaged (a "
        "fit never saves them); use a copy from before, or fit again"
    )
    # a run's record of its losses may hold them
    save_checkpoint(path, "ppca", {"losses": weight, "history": {"x": [weight]}})
    assert not torch.isfinite(load_checkpoint(path, "ppca")["losses"]).all()


def test_first_nonfinite_looks_into_dicts_and_lists():
    state = {"a": [torch.ones(1), {"b": torch.tensor([0.0, float("nan")])}]}
    assert first_nonfinite(state) == "a[1]['b']"
    assert first_nonfinite({"a": torch.ones(2), "n": torch.tensor([-1])}) is None
    assert first_nonfinite({"a": state}, skip=("a",)) is None


def test_check_entries_names_what_is_missing_or_of_the_wrong_type(tmp_path):
    entries = {"epoch": int, "history": dict}
    record = {"epoch": 3, "history": {}}
    assert check_entries(record, entries, "ckpt.pt") is record
    with pytest.raises(CheckpointError) as raised:
        check_entries({"epoch": 3}, entries, "ckpt.pt")
    assert str(raised.value) == (
        "ckpt.pt lacks the entries history: it is damaged or was written by another "
        "program"
    )
    for epoch in ("3", True):
        with pytest.raises(CheckpointError) as raised:
            check_entries({"epoch": epoch, "history": {}}, entries, "ckpt.pt")
        assert str(raised.value) == (
            f"ckpt.pt: entry epoch is a {type(epoch).__name__}, which a checkpoint "
            "of this zoo never holds there"
        )


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
