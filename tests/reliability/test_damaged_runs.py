"""Damaged, foreign and edited run files, and the small lies of resume and Ctrl-C:
each ends in exit status 2 and one line naming the problem, before any work, and
nothing of the run is lost.

Every case here was found by trying the command line as an adversarial user would;
each test is one of them.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from ppl_models.io.checkpoint import save_checkpoint
from tests.reliability.cli_runs import DIGITS, PPCA, assert_refused, run


@pytest.fixture
def vae_run(runs, tmp_path) -> Path:
    """A copy of the VAE run to damage."""
    return Path(shutil.copytree(runs["vae"], tmp_path / "vae"))


@pytest.fixture
def ppca_run(runs, tmp_path) -> Path:
    return Path(shutil.copytree(runs["ppca"], tmp_path / "ppca"))


def every_command(run_dir: Path) -> list[list]:
    """The commands that read a VAE run: evaluate, criticize and a resume."""
    return [
        ["evaluate", run_dir, "--iwae-samples", "2", "--device", "cpu"],
        ["criticize", run_dir, "--device", "cpu"],
        [*DIGITS, "--epochs", "3", "--resume", "--out", run_dir],
    ]


def assert_every_command_refuses(run_dir: Path, *fragments: str) -> None:
    files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    for argv in every_command(run_dir):
        assert_refused(*run(*argv), *fragments)
    # nothing of the run was changed by the refusals
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert after == files


def edit_checkpoint(run_dir: Path, edit) -> None:
    path = run_dir / "checkpoint.pt"
    record = torch.load(path, weights_only=True)
    edit(record)
    torch.save(record, path)


def edit_json(path: Path, edit) -> None:
    values = json.loads(path.read_text())
    edit(values)
    path.write_text(json.dumps(values))


@pytest.mark.parametrize(
    "content",
    [os.urandom(5000), b"a text file\n", "half", "most"],
    ids=["random-bytes", "text", "truncated-50%", "truncated-99%"],
)
def test_a_checkpoint_that_is_not_a_whole_archive_is_refused(vae_run, content):
    path = vae_run / "checkpoint.pt"
    if content in ("half", "most"):
        data = path.read_bytes()
        content = data[: int(len(data) * (0.5 if content == "half" else 0.99))]
    path.write_bytes(content)
    assert_every_command_refuses(vae_run, "is not a checkpoint: it is not the archive")


def test_a_flipped_bit_in_the_weights_is_refused(vae_run):
    path = vae_run / "checkpoint.pt"
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    name, extra = struct.unpack("<HH", data[member.header_offset + 26 :][:4])
    data[member.header_offset + 30 + name + extra + member.file_size // 2] ^= 1
    path.write_bytes(bytes(data))
    assert_every_command_refuses(vae_run, f"{member.filename} fails its CRC-32 check")


def test_a_foreign_pickle_is_refused_without_advice_to_unpickle_it(vae_run):
    record = torch.load(vae_run / "checkpoint.pt", weights_only=True)
    record["extra"] = argparse_namespace()
    torch.save(record, vae_run / "checkpoint.pt")
    assert_every_command_refuses(vae_run, "holds objects other than tensors")
    _, err = run("criticize", vae_run)
    assert "weights_only" not in err


def argparse_namespace():
    import argparse

    return argparse.Namespace(anything=1)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda r: r.pop("history"), "lacks the entries history"),
        (lambda r: r.__setitem__("epoch", "2"), "entry epoch is a str"),
        (
            lambda r: r["vae_state"].pop("model.decoder.net.0.weight"),
            'Missing key(s) in state_dict: "model.decoder.net.0.weight"',
        ),
        (
            lambda r: r["vae_state"]["model.decoder.net.0.weight"].fill_(float("nan")),
            "NaN or infinite values in vae_state['model.decoder.net.0.weight']",
        ),
        (
            lambda r: r["vae_state"].__setitem__(
                "model.decoder.net.0.weight", torch.zeros(3, 3)
            ),
            "size mismatch for model.decoder.net.0.weight",
        ),
        (lambda r: r["history"].__setitem__("loss", [1.0]), "its history holds"),
    ],
    ids=["entry-missing", "entry-type", "key-missing", "nan", "shape", "history"],
)
def test_a_checkpoint_with_wrong_contents_is_refused_naming_them(
    vae_run, edit, fragment
):
    edit_checkpoint(vae_run, edit)
    assert_every_command_refuses(vae_run, fragment)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda c: c.pop("activation"), "config.json lacks the settings activation"),
        (lambda c: c.__setitem__("hidden_dims", 16), "hidden_dims cannot be 16"),
        (lambda c: c.__setitem__("lr", -1.0), "lr must be a positive finite number"),
        (lambda c: c.__setitem__("batch_size", 2**70), "batch_size must be at most"),
        (
            lambda c: c.__setitem__("binarize", "none"),
            "config.json was edited after its checkpoint was written: binarize is "
            "'none' there, 'dynamic' in the checkpoint",
        ),
        (
            lambda c: c.__setitem__("lr", 0.5),
            "lr is 0.5 there, 0.001 in the checkpoint",
        ),
    ],
    ids=["key-deleted", "int-for-tuple", "negative", "huge", "binarize", "lr"],
)
def test_an_edited_config_json_is_refused_not_obeyed_or_ignored(
    vae_run, edit, fragment
):
    edit_json(vae_run / "config.json", edit)
    assert_every_command_refuses(vae_run, fragment)


def test_an_edit_a_resume_may_make_is_taken(vae_run):
    # epochs is taken anew by a resume, so a config.json that says more is fine
    edit_json(vae_run / "config.json", lambda c: c.__setitem__("epochs", 7))
    assert run("criticize", vae_run, "--device", "cpu")[0] == 0


def test_an_edited_ppca_config_is_refused(ppca_run):
    edit_json(ppca_run / "config.json", lambda c: c.__setitem__("latent_dim", 2))
    assert_refused(
        *run("criticize", ppca_run),
        "latent_dim is 2 there, 1 in the checkpoint",
    )


@pytest.mark.parametrize(
    "content, fragment",
    [("{not json", "summary.json is not valid JSON"),
     ("[1, 2]", "summary.json is a JSON list, not an object")],
)  # fmt: skip
def test_a_damaged_summary_is_refused_before_the_work(vae_run, content, fragment):
    (vae_run / "summary.json").write_text(content)
    for argv in every_command(vae_run)[:2]:
        assert_refused(*run(*argv), fragment)
        assert (vae_run / "summary.json").read_text() == content


def test_resume_refuses_a_setting_it_would_ignore(vae_run):
    status, err = run(*DIGITS, "--latent-dim", "5", "--epochs", "3", "--resume",
                      "--out", vae_run)  # fmt: skip
    assert_refused(status, err, "--latent-dim 5 (the run has 2)")


@pytest.mark.parametrize("epochs", ["1", "2"])
def test_resume_to_no_more_epochs_than_done_is_refused(vae_run, epochs):
    before = (vae_run / "summary.json").read_text()
    status, err = run(*DIGITS, "--epochs", epochs, "--resume", "--out", vae_run)
    assert_refused(status, err, f"epochs={epochs}, but the checkpoint has 2 epochs")
    assert (vae_run / "summary.json").read_text() == before


def test_ppca_resume_to_no_more_steps_than_done_is_refused(ppca_run):
    status, err = run(*PPCA, "--steps", "10", "--resume", "--out", ppca_run)
    assert_refused(status, err, "steps=10, but the checkpoint has 20 steps")


def test_a_folder_that_cannot_be_written_is_refused_before_the_work(
    vae_run, monkeypatch
):
    # A read-only file system, as the operating system reports it (the tests may
    # run as root, whom a file mode does not stop).
    import filelock

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(filelock.FileLock, "acquire", read_only)
    work = []
    import ppl_models.models.vae.experiment as experiment

    monkeypatch.setattr(experiment, "load_fit", lambda *a, **k: work.append(a))
    for argv in every_command(vae_run):
        assert_refused(*run(*argv), f"cannot write to {vae_run} (Read-only file")
    assert work == []


def test_ctrl_c_before_the_first_checkpoint_leaves_no_run_to_resume(
    tmp_path, monkeypatch
):
    import ppl_models.models.vae.experiment as experiment

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "fit_vae", interrupted)
    out = tmp_path / "existing"
    out.mkdir()
    status, err = run(*DIGITS, "--epochs", "1", "--out", out)
    assert status == 130 and err.strip() == "ppl-models: interrupted"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []
    status, err = run(*DIGITS, "--epochs", "1", "--resume", "--out", out)
    assert_refused(status, err, "holds no checkpoint to resume")
    monkeypatch.undo()
    assert run(*DIGITS, "--epochs", "1", "--out", out)[0] == 0


def test_out_of_memory_building_a_network_is_one_line(tmp_path, monkeypatch):
    import ppl_models.models.vae.fit as vae_fit

    def too_large(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 4000000000 bytes."
        )

    monkeypatch.setattr(vae_fit.VAEFit, "network_class", too_large)
    status, err = run(*DIGITS, "--epochs", "1", "--out", tmp_path / "o")
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("ppl-models: out of memory: [enforce fail")
    assert not (tmp_path / "o").exists()


def test_a_full_disk_during_evaluate_is_an_error_not_a_stopped_training(
    vae_run, monkeypatch
):
    import ppl_models.io.atomic as atomic

    replace = os.replace

    def full_for_the_summary(source, destination):
        # the lock's note is written; the summary, after the work, is not
        if Path(destination).name == "summary.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        replace(source, destination)

    before = (vae_run / "summary.json").read_text()
    monkeypatch.setattr(atomic.os, "replace", full_for_the_summary)
    status, err = run("evaluate", vae_run, "--iwae-samples", "2")
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("ppl-models: error: could not write ")
    assert "no space left on device; the previous summary.json is intact" in err
    assert (vae_run / "summary.json").read_text() == before


def test_a_checkpoint_outside_a_run_directory_keeps_no_settings(tmp_path):
    save_checkpoint(tmp_path / "mine.pt", "vae", {"epoch": 1})
    assert "settings" not in torch.load(tmp_path / "mine.pt", weights_only=True)
