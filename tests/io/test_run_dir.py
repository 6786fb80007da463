"""Run directories: preparing one, and reading and writing its config, summary and
tables, with errors that name the directory and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ppl_models.errors import CheckpointError, UsageError
from ppl_models.io import run_dir
from ppl_models.io.run_dir import (
    prepare_run_dir,
    read_config,
    read_summary,
    update_summary,
    write_config,
    write_table,
    write_text,
)


def test_prepare_run_dir_creates_missing_parents_and_accepts_an_existing_dir(tmp_path):
    path = tmp_path / "runs" / "2024" / "ppca"
    assert prepare_run_dir(str(path)) == path
    assert path.is_dir()
    (path / "config.json").write_text("{}")
    assert prepare_run_dir(path) == path  # a second fit into the same directory
    assert [p.name for p in path.iterdir()] == ["config.json"]  # probe file is gone


def test_prepare_run_dir_refuses_a_path_that_is_a_file(tmp_path):
    path = tmp_path / "taken"
    path.write_text("not a directory")
    with pytest.raises(UsageError) as raised:
        prepare_run_dir(path)
    assert str(raised.value) == f"cannot write to output directory {path}: File exists"


def test_the_probe_file_goes_in_the_run_directory_and_its_error_is_named(
    tmp_path, monkeypatch
):
    # A directory where creating files fails with an error that carries no message
    # (as some network file systems do); files elsewhere can still be created.
    out = tmp_path / "out"
    create = run_dir.tempfile.TemporaryFile

    def refuse_in_out(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == out:
            raise PermissionError  # no errno, no strerror
        return create(*args, dir=dir, **kwargs)

    monkeypatch.setattr(run_dir.tempfile, "TemporaryFile", refuse_in_out)
    with pytest.raises(UsageError) as raised:
        prepare_run_dir(out)
    assert (
        str(raised.value) == f"cannot write to output directory {out}: PermissionError"
    )


def test_prepare_run_dir_refuses_a_directory_it_may_not_write(tmp_path, monkeypatch):
    # As root every directory is writable, so the permission check is stubbed.
    monkeypatch.setattr(run_dir.os, "access", lambda path, mode: False)
    with pytest.raises(UsageError) as raised:
        prepare_run_dir(tmp_path)
    assert str(raised.value) == (
        f"cannot write to output directory {tmp_path}: not writable"
    )


def test_a_config_round_trips(tmp_path):
    config = {"model": "vae", "latent_dim": 3, "hidden_dims": [16]}
    write_config(tmp_path, config)
    assert (tmp_path / "config.json").is_file()
    assert read_config(str(tmp_path)) == config


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "{dir} is not a run directory: it has no config.json"),
        ("{not json", "{dir}/config.json is not valid JSON: "),
        ('{"latent_dim": 3}', "{dir}/config.json does not name a model"),
        ('["model"]', "{dir}/config.json does not name a model"),
    ],
    ids=["missing", "not-json", "no-model", "not-a-dict"],
)
def test_read_config_says_what_is_wrong(tmp_path, content, message):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(CheckpointError) as raised:
        read_config(tmp_path)
    assert str(raised.value).startswith(message.format(dir=tmp_path))


def test_update_summary_merges_into_the_file_and_returns_the_whole_summary(tmp_path):
    assert read_summary(tmp_path) == {}  # no summary.json yet
    assert update_summary(tmp_path, elbo=-3.5) == {"elbo": -3.5}
    merged = update_summary(str(tmp_path), elbo=-2.0, seconds=1.5)
    assert merged == {"elbo": -2.0, "seconds": 1.5}
    assert read_summary(str(tmp_path)) == merged
    assert (tmp_path / "summary.json").read_text().startswith('{\n  "elbo": -2.0,')


def test_write_table_writes_a_header_and_nine_significant_digits(tmp_path):
    write_table(str(tmp_path), "losses.csv", {"step": [1, 2], "loss": [0.5, 1 / 3]})
    text = (tmp_path / "losses.csv").read_text()
    assert text == "step,loss\n1,0.5\n2,0.333333333\n"


def test_write_table_refuses_columns_of_different_lengths(tmp_path):
    with pytest.raises(ValueError):
        write_table(tmp_path, "losses.csv", {"step": [1, 2], "loss": [0.5]})
    assert not (tmp_path / "losses.csv").exists()


def test_write_text_writes_exactly_the_text(tmp_path):
    write_text(tmp_path / "report.txt", "line 1\nline 2\n")
    assert (tmp_path / "report.txt").read_text() == "line 1\nline 2\n"
