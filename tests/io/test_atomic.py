"""Atomic files: the exact bytes and text that land on disk, and JSON round trips."""

from __future__ import annotations

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
