"""Atomic files: the exact bytes and text that land on disk, and JSON round trips."""

from __future__ import annotations

import os
import stat

import pytest

from ppl_models.io.atomic import atomic_write, read_json, write_json


def test_atomic_write_writes_bytes_by_default(tmp_path):
    path = tmp_path / "blob.bin"
    atomic_write(path, lambda handle: handle.write(b"\x00\x01payload"))
    assert path.read_bytes() == b"\x00\x01payload"
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]  # no temporary left


def test_atomic_write_in_text_mode_replaces_the_old_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    atomic_write(path, lambda handle: handle.write("new text"), mode="w")
    assert path.read_text() == "new text"


def test_write_json_is_indented_by_two_keeps_key_order_and_ends_in_a_newline(tmp_path):
    # summary.json and config.json are read by people: one key a line, in the order
    # the program wrote them, and a final newline so that `cat` leaves a clean prompt.
    path = tmp_path / "summary.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'


def test_read_json_returns_what_write_json_wrote(tmp_path):
    path = tmp_path / "config.json"
    obj = {"model": "ppca", "steps": 5, "lr": 0.01, "dims": [2, 3], "note": None}
    write_json(path, obj)
    assert read_json(path) == obj


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0, 0o666)])
def test_written_files_get_the_mode_a_plain_open_would(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.bin", lambda handle: handle.write(b"x"))
        write_json(tmp_path / "b.json", {"a": 1})
        (tmp_path / "plain").write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == mode
    for name in ("a.bin", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


@pytest.mark.parametrize("proc", [True, False])
def test_the_umask_is_read_with_or_without_proc(monkeypatch, proc):
    from pathlib import Path

    from ppl_models.io import atomic

    if not proc:

        def no_proc(self, *args, **kwargs):
            raise OSError("no /proc here")

        monkeypatch.setattr(Path, "read_text", no_proc)
    previous = os.umask(0o027)
    try:
        assert atomic._umask() == 0o027
        assert os.umask(0o027) == 0o027  # left as it was
    finally:
        os.umask(previous)


@pytest.mark.skipif(
    not os.path.isfile("/proc/self/status"), reason="needs Linux's /proc/self/status"
)
def test_the_umask_is_read_from_proc_without_setting_it(monkeypatch):
    # Setting the umask to read it would briefly change it for every other thread.
    from ppl_models.io import atomic

    previous = os.umask(0o027)
    try:

        def no_setting(mask):
            raise AssertionError("the umask was set to read it")

        monkeypatch.setattr(atomic.os, "umask", no_setting)
        assert atomic._umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(previous)
