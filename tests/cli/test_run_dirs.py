"""The command line never loses a run: the causes of data loss found by trying it as
a user and as an adversary would, each reproduced, and the options that go with
them (--overwrite for every model, --debug anywhere, --version, help for every
option)."""

from __future__ import annotations

import argparse
import importlib
import json

import pytest

from ppl_models import __version__
from ppl_models.cli import main
from ppl_models.cli.main import build_parser, evaluate_parser
from ppl_models.io.checkpoint import load_checkpoint
from ppl_models.io.run_lock import run_dir_lock
from ppl_models.registry import get_model, list_models

PPCA = ["fit", "ppca", "--steps", "50", "--num-datapoints", "200",
        "--ppc-samples", "20", "--device", "cpu"]  # fmt: skip
VAE = ["fit", "vae", "--dataset", "digits", "--latent-dim", "2", "--hidden-dim",
       "16", "--batch-size", "512", "--device", "cpu", "--no-criticize"]  # fmt: skip


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def strict_json(path):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_fit_of_another_model_does_not_replace_a_run(capsys, tmp_path):
    assert run_cli(capsys, *VAE, "--epochs", "1", "--out", tmp_path)[0] == 0
    vae_checkpoint = (tmp_path / "checkpoint.pt").read_bytes()

    status, _, err = run_cli(capsys, *PPCA, "--out", tmp_path)
    assert status == 2
    assert f"{tmp_path} already holds a run of model 'vae'" in err
    assert "--overwrite" in err and "--resume" not in err
    assert (tmp_path / "checkpoint.pt").read_bytes() == vae_checkpoint

    status, out, err = run_cli(capsys, *PPCA, "--out", tmp_path, "--overwrite")
    assert status == 0, err
    assert "test_elbo" not in out
    assert not (tmp_path / "nelbo.png").exists()  # the VAE's plot went with it
    summary = strict_json(tmp_path / "summary.json")
    assert summary["model"] == "ppca" and "test_elbo" not in summary
    load_checkpoint(tmp_path / "checkpoint.pt", "ppca")


def test_a_map_run_over_a_meanfield_run_keeps_nothing_of_it(capsys, tmp_path):
    meanfield = [*PPCA, "--inference", "meanfield", "--out", tmp_path]
    assert run_cli(capsys, *meanfield)[0] == 0
    assert "w_scale" in strict_json(tmp_path / "summary.json")
    assert run_cli(capsys, *PPCA, "--out", tmp_path)[0] == 2  # a run is there
    assert run_cli(capsys, *PPCA, "--out", tmp_path, "--overwrite")[0] == 0
    summary = strict_json(tmp_path / "summary.json")
    assert summary["inference"] == "map" and "w_scale" not in summary


def test_resume_of_another_models_run_is_refused(capsys, tmp_path):
    assert run_cli(capsys, *PPCA, "--out", tmp_path)[0] == 0
    before = (tmp_path / "checkpoint.pt").read_bytes()
    status, _, err = run_cli(
        capsys, *VAE, "--epochs", "1", "--resume", "--out", tmp_path
    )
    assert status == 2
    assert "holds a run of model 'ppca', not 'vae'" in err
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    status, _, err = run_cli(capsys, *VAE, "--resume", "--overwrite", "--out", tmp_path)
    assert status == 2 and "give one of them" in err


def test_a_second_writer_is_refused_and_changes_nothing(capsys, tmp_path):
    assert run_cli(capsys, *PPCA, "--out", tmp_path)[0] == 0
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    # The first writer is this process, from another file handle: the lock is the
    # operating system's, so it excludes this process's own second writer too.
    with run_dir_lock(tmp_path, command="ppl-models fit ppca (first writer)"):
        for argv in [
            [*PPCA, "--out", tmp_path, "--overwrite"],
            ["criticize", tmp_path, "--device", "cpu"],
        ]:
            status, _, err = run_cli(capsys, *argv)
            assert status == 2
            assert "is being written by another process" in err
            assert "(first writer)" in err
    for name, content in files.items():
        assert (tmp_path / name).read_bytes() == content, name


def test_no_state_that_gives_a_non_finite_elbo_is_checkpointed(capsys, tmp_path):
    # With one step per epoch, the bad update is the epoch's last: its loss and
    # gradient were finite, the weights it leaves are not usable.
    argv = [*VAE, "--batch-size", "1500", "--lr", "1e30", "--epochs", "3"]
    status, _, err = run_cli(capsys, *argv, "--out", tmp_path)
    assert status == 1
    assert "held-out ELBO of nan" in err and "is intact" not in err
    assert not (tmp_path / "checkpoint.pt").exists()
    # Nothing is left that would pass for a run: the folder takes a new fit as it is.
    assert not (tmp_path / "summary.json").exists()
    assert not (tmp_path / "config.json").exists()
    assert run_cli(capsys, *VAE, "--epochs", "1", "--out", tmp_path)[0] == 0


def test_numbers_of_a_shorter_run_are_not_left_beside_a_resumed_one(capsys, tmp_path):
    assert run_cli(capsys, *VAE, "--epochs", "1", "--out", tmp_path)[0] == 0
    evaluate = ["evaluate", tmp_path, "--iwae-samples", "2", "--iwae-images", "20"]
    assert run_cli(capsys, *evaluate, "--device", "cpu")[0] == 0
    assert "test_iwae" in strict_json(tmp_path / "summary.json")
    status, out, err = run_cli(
        capsys, *VAE, "--epochs", "2", "--resume", "--out", tmp_path
    )
    assert status == 0, err
    summary = strict_json(tmp_path / "summary.json")
    assert len(summary["test_elbo"]) == 2
    assert not {"test_iwae", "iwae_samples", "test_rate"} & set(summary)


def test_debug_is_accepted_anywhere_on_the_line(capsys, tmp_path):
    missing = tmp_path / "missing"
    for argv in [["--debug", "criticize", missing], ["criticize", missing, "--debug"]]:
        status, _, err = run_cli(capsys, *argv)
        assert status == 2
        assert "Traceback" in err and "is not a run directory" in err
    status, _, err = run_cli(capsys, "criticize", missing)
    assert status == 2 and "Traceback" not in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == __version__


def every_parser():
    parser = build_parser()
    yield "ppl-models", parser
    for action in parser._subparsers._group_actions:  # noqa: SLF001
        for name, sub in action.choices.items():
            yield name, sub
            for inner in sub._subparsers._group_actions if sub._subparsers else []:
                yield from inner.choices.items()
    for name in list_models():
        yield f"evaluate {name}", evaluate_parser(get_model(name))


def test_every_option_has_help_and_shows_its_default():
    for name, parser in every_parser():
        text = " ".join(parser.format_help().split())  # undo the line wrapping
        for action in parser._actions:  # noqa: SLF001
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                continue
            assert action.help, f"{name}: {action.option_strings or action.dest}"
            if action.default not in (None, False, argparse.SUPPRESS):
                assert f"default: {action.default}" in text or "default" in (
                    action.help
                ), f"{name}: {action.option_strings}"


def test_evaluate_help_shows_the_models_options(capsys, tmp_path):
    assert run_cli(capsys, *VAE, "--epochs", "1", "--out", tmp_path)[0] == 0
    status, out, _ = run_cli(capsys, "evaluate", tmp_path, "--help")
    assert status == 0 and "--iwae-samples" in out and "default: 100" in out
    status, out, _ = run_cli(capsys, "evaluate", "--help")
    assert status == 0 and "evaluate DIR --help" in out


def test_without_a_terminal_progress_is_one_line_per_epoch_and_metrics_csv(
    capsys, tmp_path
):
    vae, ppca = tmp_path / "vae", tmp_path / "ppca"
    status, _, err = run_cli(capsys, *VAE, "--epochs", "2", "--out", vae)
    assert status == 0, err
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    metrics = (vae / "metrics.csv").read_text().splitlines()
    assert metrics[0] == "epoch,train_elbo,test_elbo,train_seconds"
    summary = strict_json(vae / "summary.json")
    assert [float(row.split(",")[2]) for row in metrics[1:]] == pytest.approx(
        summary["test_elbo"], rel=1e-8
    )
    assert f"test ELBO {summary['test_elbo'][1]:.2f}" in lines[1]

    status, _, err = run_cli(capsys, *PPCA, "--out", ppca)
    assert status == 0, err
    lines = err.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        f"ppca map: step {step}/50" for step in range(5, 51, 5)
    ]
    rows = (ppca / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss" and len(rows) == 51
    # The line of step 50 gives the loss of step 50, as metrics.csv does.
    assert f"loss {float(rows[50].split(',')[1]):.6g}," in lines[-1]


def test_an_interrupt_hints_at_resume_only_where_a_checkpoint_was_written(
    capsys, tmp_path, monkeypatch
):
    cli_main = importlib.import_module("ppl_models.cli.main")  # the package's
    # `main` attribute is the function, not the module

    def interrupted_after_a_checkpoint(spec, args, *more):
        args.out.mkdir(parents=True)
        (args.out / "checkpoint.pt").write_bytes(b"")
        raise KeyboardInterrupt

    def interrupted_before_one(spec, args, *more):
        raise KeyboardInterrupt

    for model in (VAE, PPCA):
        out = tmp_path / model[1]
        monkeypatch.setattr(cli_main, "run_fit", interrupted_after_a_checkpoint)
        status, _, err = run_cli(capsys, *model, "--out", out)
        assert status == 130
        assert f"the checkpoint in {out} holds the last finished epoch or step" in err
        assert err.strip().endswith("continue with --resume")
        monkeypatch.setattr(cli_main, "run_fit", interrupted_before_one)
        status, _, err = run_cli(capsys, *model, "--out", tmp_path / "none")
        assert status == 130 and err.strip() == "ppl-models: interrupted"
