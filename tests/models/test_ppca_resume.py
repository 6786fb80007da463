"""PPCA runs resume exactly: 30 steps, then on to 60 with ``--resume``, end as 60
steps straight do, to the bit; so does a run stopped by Ctrl-C."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from ppl_models.cli import main
from ppl_models.fullbatch import spec as fullbatch_spec
from ppl_models.io.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import assert_same_parameters

SMALL = ["--num-datapoints", "200", "--data-dim", "3", "--ppc-samples", "10",
         "--device", "cpu"]  # fmt: skip


def fit(capsys, out, *extra) -> tuple[int, str]:
    status = main(["fit", "ppca", *SMALL, "--out", str(out), *map(str, extra)])
    return status, capsys.readouterr().err


def assert_same_run(a, b) -> None:
    first, second = (load_checkpoint(d / "checkpoint.pt", "ppca") for d in (a, b))
    assert_same_parameters(first["model_state"], second["model_state"])
    assert_same_parameters(first["guide_state"], second["guide_state"])
    assert torch.equal(first["losses"], second["losses"])
    assert first["step"] == second["step"]
    assert_same_parameters(
        first["optimizer_state"]["state"][0], second["optimizer_state"]["state"][0]
    )
    summaries = [json.loads((d / "summary.json").read_text()) for d in (a, b)]
    for key in ("final_loss", "w", "axis_cosine_closed_form", "ppc", "steps"):
        assert summaries[0][key] == summaries[1][key], key


@pytest.mark.parametrize("inference", ["map", "meanfield"])
def test_a_resumed_run_ends_as_the_straight_run_does(inference, capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert fit(capsys, a, "--inference", inference, "--steps", 30)[0] == 0
    assert fit(capsys, a, "--steps", 60, "--resume")[0] == 0
    assert fit(capsys, b, "--inference", inference, "--steps", 60)[0] == 0
    assert_same_run(a, b)
    assert json.loads((a / "config.json").read_text())["steps"] == 60
    assert len((a / "metrics.csv").read_text().splitlines()) == 1 + 60


def test_ctrl_c_saves_the_last_whole_step_and_resume_is_exact(
    capsys, tmp_path, monkeypatch, ctrl_c_raises
):
    a, b = tmp_path / "a", tmp_path / "b"
    real_fit = fullbatch_spec.train

    def fit_interrupted_at_step_17(*args, **kwargs):
        calls = [0]
        original = torch.optim.Adam.step

        def step(self, *a, **k):
            calls[0] += 1
            if calls[0] == 17:
                signal.raise_signal(signal.SIGINT)  # mid-step, before the update
            return original(self, *a, **k)

        monkeypatch.setattr(torch.optim.Adam, "step", step)
        try:
            return real_fit(*args, **kwargs)
        finally:
            monkeypatch.setattr(torch.optim.Adam, "step", original)

    monkeypatch.setattr(fullbatch_spec, "train", fit_interrupted_at_step_17)
    status, err = fit(capsys, a, "--inference", "meanfield", "--steps", 60)
    assert status == 130 and "continue with --resume" in err
    assert load_checkpoint(a / "checkpoint.pt", "ppca")["step"] == 17
    monkeypatch.setattr(fullbatch_spec, "train", real_fit)
    assert fit(capsys, a, "--steps", 60, "--resume")[0] == 0
    assert fit(capsys, b, "--inference", "meanfield", "--steps", 60)[0] == 0
    assert_same_run(a, b)


def test_resume_is_refused_without_a_checkpoint_or_without_more_steps(capsys, tmp_path):
    status, err = fit(capsys, tmp_path / "none", "--resume")
    assert status == 2 and "holds no checkpoint to resume" in err
    run = tmp_path / "run"
    assert fit(capsys, run, "--steps", 30)[0] == 0
    config = (run / "config.json").read_text()
    for steps in (30, 20):
        status, err = fit(capsys, run, "--steps", steps, "--resume")
        assert status == 2
        assert err.strip() == (
            f"ppl-models: error: steps={steps}, but the checkpoint has 30 steps "
            "already: ask for more steps in all"
        )
        assert (run / "config.json").read_text() == config
    # A run whose checkpoint is gone (its config is still there).
    (run / "checkpoint.pt").unlink()
    status, err = fit(capsys, run, "--steps", 60, "--resume")
    assert status == 2
    assert (
        err.strip()
        == f"ppl-models: error: --resume: {run} holds no checkpoint to resume"
    )


def test_a_checkpoint_from_before_resume_existed_is_refused_by_name(capsys, tmp_path):
    run = tmp_path / "run"
    assert fit(capsys, run, "--steps", 30)[0] == 0
    record = load_checkpoint(run / "checkpoint.pt", "ppca")
    old = {
        k: v
        for k, v in record.items()
        if k not in ("step", "optimizer_state", "rng", "format", "model")
    }
    save_checkpoint(run / "checkpoint.pt", "ppca", old)
    status, err = fit(capsys, run, "--steps", 60, "--resume")
    assert status == 2
    assert err.strip() == (
        "ppl-models: error: the checkpoint holds no optimizer and random state: it "
        "cannot go on; fit again with --overwrite"
    )


@pytest.mark.parametrize("part", ["model_state", "guide_state"])
def test_resuming_from_a_checkpoint_that_does_not_fit_names_the_problem(
    part, capsys, tmp_path
):
    run = tmp_path / "run"
    assert fit(capsys, run, "--steps", 30)[0] == 0
    record = load_checkpoint(run / "checkpoint.pt", "ppca")
    record[part]["unexpected"] = torch.zeros(1)
    payload = {k: v for k, v in record.items() if k not in ("format", "model")}
    save_checkpoint(run / "checkpoint.pt", "ppca", payload)
    status, err = fit(capsys, run, "--steps", 60, "--resume")
    assert status == 2
    assert err.startswith(
        "ppl-models: error: the checkpoint does not fit the run's configuration: "
    )
    assert "unexpected" in err


def test_checkpoints_follow_checkpoint_every_and_a_resume_takes_only_the_rest(
    capsys, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    calls = [0]
    original = torch.optim.Adam.step

    def step_then_crash_at_25(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 25:
            raise RuntimeError("the machine went away")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_then_crash_at_25)
    with pytest.raises(RuntimeError, match="the machine went away"):
        fit(capsys, run, "--steps", 60, "--checkpoint-every", 10)
    # Steps 10 and 20 were saved; the crash at 25 left step 20 on disk.
    assert load_checkpoint(run / "checkpoint.pt", "ppca")["step"] == 20
    calls[0] = -1000  # no more crashes
    assert fit(capsys, run, "--steps", 60, "--resume")[0] == 0
    assert calls[0] == -1000 + 40  # steps 21 to 60, not a fresh fit of 60
