"""Run directories never lose a run: one writer at a time, a lock that dies with its
holder, --overwrite that removes only the run's own files, no temporary files left
by a killed writer, and a summary that every JSON reader can load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ppl_models.errors import UsageError
from ppl_models.io.atomic import write_json
from ppl_models.io.run_dir import (
    MANIFEST,
    read_summary,
    update_summary,
    write_summary,
    writing_run,
)
from ppl_models.io.run_lock import HOLDER, run_dir_lock

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from ppl_models.io.run_lock import run_dir_lock
    with run_dir_lock(sys.argv[1], command="ppl-models fit held-by-a-test"):
        print("locked", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def lock_holder(tmp_path):
    """A separate process holding ``tmp_path``'s lock until it is killed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        yield child
    finally:
        child.kill()
        child.wait()


def strict_json(path):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, lock_holder):
    with pytest.raises(UsageError) as error, writing_run(tmp_path):
        pass
    message = str(error.value)
    assert f"pid {lock_holder.pid}" in message
    assert "ppl-models fit held-by-a-test" in message


def test_the_lock_of_a_killed_writer_does_not_block(tmp_path, lock_holder):
    lock_holder.send_signal(signal.SIGKILL)
    lock_holder.wait()
    assert (tmp_path / HOLDER).is_file()  # its note stays behind, and is ignored
    with writing_run(tmp_path):
        write_json(tmp_path / "config.json", {"model": "x"})
    assert not (tmp_path / HOLDER).exists()


def test_the_lock_is_released_after_an_error(tmp_path):
    with pytest.raises(RuntimeError), run_dir_lock(tmp_path):
        raise RuntimeError("boom")
    with run_dir_lock(tmp_path):
        pass


def test_stale_temporary_files_are_removed_at_the_next_start(tmp_path):
    stale = [tmp_path / ".checkpoint.pt.k2j3h4.tmp", tmp_path / ".summary.json.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    (tmp_path / "notes.tmp").write_text("the user's")
    with writing_run(tmp_path):
        pass
    assert not any(path.exists() for path in stale)
    assert (tmp_path / "notes.tmp").read_text() == "the user's"


def test_replace_removes_the_runs_files_and_keeps_the_users(tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n")
    with writing_run(tmp_path):
        write_json(tmp_path / "config.json", {"model": "a"})
        (tmp_path / "plot-of-a.png").write_bytes(b"png")
        (tmp_path / "metrics.csv").write_text("epoch\n1\n")
    assert strict_json(tmp_path / MANIFEST) == [
        "config.json",
        "metrics.csv",
        "plot-of-a.png",
    ]
    with writing_run(tmp_path, replace=True):
        assert sorted(p.name for p in tmp_path.iterdir() if p.name[0] != ".") == [
            "data.csv"
        ]
        write_json(tmp_path / "config.json", {"model": "b"})
    assert strict_json(tmp_path / MANIFEST) == ["config.json"]


def test_files_written_before_an_error_are_still_listed(tmp_path):
    with pytest.raises(KeyboardInterrupt), writing_run(tmp_path):
        (tmp_path / "checkpoint.pt").write_bytes(b"x")
        raise KeyboardInterrupt
    assert strict_json(tmp_path / MANIFEST) == ["checkpoint.pt"]
    with writing_run(tmp_path, replace=True):
        assert not (tmp_path / "checkpoint.pt").exists()


def test_a_hand_edited_file_list_cannot_reach_outside_the_directory(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_json(run_dir / MANIFEST, ["../precious.txt", str(outside), 3])
    with writing_run(run_dir, replace=True):
        pass
    assert outside.read_text() == "keep"


def test_the_summary_is_strict_json_with_a_note_on_non_finite_numbers(tmp_path):
    written = write_summary(
        tmp_path,
        {"test_elbo": [-90.5, float("nan")], "ppc": {"sd": float("-inf")}, "n": 3},
    )
    assert strict_json(tmp_path / "summary.json") == written
    assert written["test_elbo"] == [-90.5, None]
    assert written["ppc"] == {"sd": None}
    assert written["nonfinite"] == {"test_elbo[1]": "nan", "ppc.sd": "-inf"}
    # An update keeps the notes on entries it leaves, and redoes the others.
    update_summary(tmp_path, test_elbo=[-90.5, -89.0], n=4)
    assert read_summary(tmp_path)["nonfinite"] == {"ppc.sd": "-inf"}
    update_summary(tmp_path, ppc={"sd": 1.0})
    assert "nonfinite" not in read_summary(tmp_path)


def test_write_json_refuses_what_strict_json_cannot_hold(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "config.json", {"lr": float("nan")})
    assert not (tmp_path / "config.json").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_holder_that_has_not_yet_named_itself_is_described_as_just_started(
    tmp_path,
):
    with run_dir_lock(tmp_path):
        (tmp_path / HOLDER).unlink()
        just_started = r"\(a process that has just started\)"
        with pytest.raises(UsageError, match=just_started), writing_run(tmp_path):
            pass


def test_the_file_list_holds_files_only_so_a_replace_never_meets_a_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with writing_run(run):
        (run / "summary.json").write_text("{}")
        (run / "figures").mkdir()
        (run / "figures" / "a.png").write_bytes(b"png")
    assert json.loads((run / ".files.json").read_text()) == ["summary.json"]
    with writing_run(run, replace=True):
        pass
    assert not (run / "summary.json").exists()
    assert (run / "figures" / "a.png").read_bytes() == b"png"
