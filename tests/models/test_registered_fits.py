"""Every registered model's fit through its run directory: fitted on the command
line, rebuilt by ``ppl_models.load_fit``, criticised and saved again as a ``Fit``;
resumed runs that end bitwise as straight ones; and for models built on
``FullBatchSpec``, the run directory, Ctrl-C and refused resumes.

A new model is covered here by registering it: no new test code.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import signal

import pytest
import torch

import ppl_models
from ppl_models import get_model, list_models
from ppl_models.cli import main
from ppl_models.cli.options import add_options, from_namespace
from ppl_models.fullbatch import FullBatchSpec
from ppl_models.inference import trainer
from ppl_models.io.checkpoint import load_checkpoint, save_checkpoint
from ppl_models.run_config import read_run_config

#: the settings that say how long a run is, in all (resumed parts included)
RUN_LENGTHS = ("steps", "epochs")
FULL_BATCH = [n for n in list_models() if issubclass(get_model(n), FullBatchSpec)]


def fit(capsys, name, out, *extra) -> tuple[int, str]:
    """``ppl-models fit NAME`` with the model's smoke arguments, then ``extra``."""
    argv = ["fit", name, *get_model(name).smoke_fit_args(), "--device", "cpu"]
    status = main([*argv, "--out", str(out), *map(str, extra)])
    return status, capsys.readouterr().err


def summary_of(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def as_json(value):
    """``value`` as ``summary.json`` would hold it."""
    return json.loads(json.dumps(value))


def leaves(record, where=""):
    """Every tensor and number in a checkpoint record, by path, but timings."""
    if isinstance(record, dict):
        for key, value in record.items():
            yield from leaves(value, f"{where}/{key}")
    elif isinstance(record, list | tuple):
        for i, value in enumerate(record):
            yield from leaves(value, f"{where}[{i}]")
    elif "seconds" not in where:
        yield where, record


def assert_same_checkpoint(a, b) -> None:
    first, second = dict(leaves(a)), dict(leaves(b))
    assert first.keys() == second.keys()
    for where, value in first.items():
        if torch.is_tensor(value):
            assert torch.equal(value, second[where]), where
        else:
            assert value == second[where], where


def count_steps(monkeypatch):
    """Count the SVI steps taken from now on; the returned function gives the count
    since it was last called."""
    calls = [0, 0]
    real_step = trainer.svi_step

    def step(*args, **kwargs):
        calls[0] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "svi_step", step)

    def since_last() -> int:
        new, calls[1] = calls[0] - calls[1], calls[0]
        return new

    return since_last


def run_length(name) -> tuple[str, int]:
    """The setting that counts a run's length, and its value in a smoke run."""
    spec = get_model(name)
    parser = argparse.ArgumentParser()
    add_options(parser, spec.config_class)
    config = from_namespace(spec.config_class, parser.parse_args(spec.smoke_fit_args()))
    found = [s for s in RUN_LENGTHS if hasattr(config, s)]
    if not found:
        pytest.skip(f"{name}'s config has none of the settings {RUN_LENGTHS}")
    return found[0], getattr(config, found[0])


@pytest.mark.parametrize("name", list_models())
def test_load_fit_criticize_and_save_round_trip(name, capsys, tmp_path):
    out = tmp_path / "run"
    assert fit(capsys, name, out)[0] == 0
    fitted = summary_of(out)
    loaded = ppl_models.load_fit(out, device="cpu")
    assert isinstance(loaded, ppl_models.Fit), type(loaded).__name__
    assert loaded.config == read_run_config(get_model(name).config_class, out)
    summary = as_json(loaded.summary())
    assert summary == {key: fitted[key] for key in summary}
    # Criticism elsewhere draws what the fit's own did.
    numbers = as_json(loaded.criticize(tmp_path / "elsewhere" / "figures"))
    assert numbers and numbers == {key: fitted[key] for key in numbers}
    assert any((tmp_path / "elsewhere" / "figures").iterdir())

    # Saved again and reloaded: the same fit, checkpoint and numbers.
    loaded.save(tmp_path / "copies" / "copy")
    again = ppl_models.load_fit(tmp_path / "copies" / "copy", device="cpu")
    assert again.config == loaded.config
    assert as_json(again.summary()) == summary
    assert as_json(again.criticize(tmp_path / "copies" / "copy")) == numbers
    assert_same_checkpoint(
        load_checkpoint(out / "checkpoint.pt", name),
        load_checkpoint(tmp_path / "copies" / "copy" / "checkpoint.pt", name),
    )


@pytest.mark.parametrize("name", list_models())
def test_a_resumed_run_ends_as_the_straight_run_does(
    name, capsys, tmp_path, monkeypatch
):
    if not get_model(name).can_resume:
        pytest.skip(f"{name} cannot resume (its spec's can_resume is False)")
    length, n = run_length(name)
    flag = "--" + length
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    steps = count_steps(monkeypatch)
    assert fit(capsys, name, resumed, flag, n)[0] == 0
    first = steps()
    status, err = fit(capsys, name, resumed, flag, 2 * n, "--resume")
    assert status == 0, err
    second = steps()
    assert fit(capsys, name, straight, flag, 2 * n)[0] == 0
    # The resumed run took only the steps left, not the whole run again.
    assert first + second == steps() > 0
    assert_same_checkpoint(
        load_checkpoint(resumed / "checkpoint.pt", name),
        load_checkpoint(straight / "checkpoint.pt", name),
    )
    a, b = summary_of(resumed), summary_of(straight)
    assert a.keys() == b.keys()
    for key in a:
        if "second" not in key:  # timings differ, every other number is the same
            assert a[key] == b[key], key
    assert json.loads((resumed / "config.json").read_text())[length] == 2 * n


@pytest.mark.parametrize("name", FULL_BATCH)
def test_a_full_batch_run_directory_holds_the_fit(name, capsys, tmp_path):
    out = tmp_path / "run"
    assert fit(capsys, name, out, "--steps", 30, "--checkpoint-every", 7)[0] == 0
    names = {path.name for path in out.iterdir()}
    assert {"config.json", "checkpoint.pt", "metrics.csv", "loss.png"} <= names
    assert {"ppc.png", "summary.json"} <= names
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss" and len(rows) == 31
    record = load_checkpoint(out / "checkpoint.pt", name)
    assert record["step"] == 30 and record["losses"].shape == (30,)
    summary = summary_of(out)
    for key in ("model", "inference", "device", "seed", "initial_loss"):
        assert key in summary, key
    assert summary["steps"] == 30
    assert summary["final_loss"] == pytest.approx(float(rows[-1].split(",")[1]))
    assert summary["fit_seconds"] == record["fit_seconds"]


@pytest.mark.parametrize("name", FULL_BATCH)
def test_ctrl_c_saves_the_last_whole_step_and_resume_is_exact(
    name, capsys, tmp_path, monkeypatch, ctrl_c_raises
):
    calls = [0]
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 17:
            signal.raise_signal(signal.SIGINT)  # mid-step, before the update
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    status, err = fit(capsys, name, tmp_path / "a", "--steps", 40)
    assert status == 130 and "continue with --resume" in err
    assert load_checkpoint(tmp_path / "a" / "checkpoint.pt", name)["step"] == 17
    monkeypatch.setattr(torch.optim.Adam, "step", original)
    assert fit(capsys, name, tmp_path / "a", "--steps", 40, "--resume")[0] == 0
    assert fit(capsys, name, tmp_path / "b", "--steps", 40)[0] == 0
    assert_same_checkpoint(
        load_checkpoint(tmp_path / "a" / "checkpoint.pt", name),
        load_checkpoint(tmp_path / "b" / "checkpoint.pt", name),
    )


@pytest.mark.parametrize("name", FULL_BATCH)
def test_a_resume_without_more_steps_or_resume_state_is_refused(name, capsys, tmp_path):
    run = tmp_path / "run"
    assert fit(capsys, name, run, "--steps", 20)[0] == 0
    config = (run / "config.json").read_text()
    status, err = fit(capsys, name, run, "--steps", 20, "--resume")
    assert status == 2
    assert "steps=20, but the checkpoint has 20 steps already" in err
    assert (run / "config.json").read_text() == config
    # A checkpoint of the parameters alone (as a fit saved without its optimizer).
    record = load_checkpoint(run / "checkpoint.pt", name)
    left_out = ("format", "model", "step", "optimizer_state", "rng")
    save_checkpoint(
        run / "checkpoint.pt",
        name,
        {k: v for k, v in record.items() if k not in left_out},
    )
    status, err = fit(capsys, name, run, "--steps", 40, "--resume")
    assert status == 2 and "holds no optimizer and random state" in err


@pytest.mark.parametrize("name", FULL_BATCH)
def test_a_fit_from_python_resumes_and_saves_as_the_command_line_does(
    name, capsys, tmp_path
):
    # spec.fit(config) is the Python face of `ppl-models fit NAME`: the same
    # numbers, a checkpoint it can resume from bitwise, and save() into any folder.
    spec = get_model(name)
    assert fit(capsys, name, tmp_path / "cli")[0] == 0
    config = read_run_config(spec.config_class, tmp_path / "cli")
    expected = load_checkpoint(tmp_path / "cli" / "checkpoint.pt", name)
    # The default device, "auto", is the CPU where there is no GPU.
    default_device = ("cpu",) if torch.cuda.is_available() else ()
    straight = spec.fit(config, *default_device, progress=False)
    assert straight.config == config
    assert torch.equal(straight.losses.cpu(), expected["losses"])
    half = dataclasses.replace(config, steps=config.steps // 2)
    spec.fit(half, "cpu", checkpoint_path=tmp_path / "half.pt", progress=False)
    record = load_checkpoint(tmp_path / "half.pt", name)
    pristine = copy.deepcopy(record)
    resumed = spec.fit(config, "cpu", resume_from=record, progress=False)
    assert torch.equal(resumed.losses, straight.losses)
    # The caller's record is left as it was, so a second resume ends the same.
    assert_same_checkpoint(record, pristine)
    for run_dir in (tmp_path / "new" / "nested", tmp_path / "cli"):
        resumed.save(run_dir)  # a new folder, and one that holds a run already
        assert_same_checkpoint(
            load_checkpoint(run_dir / "checkpoint.pt", name), expected
        )
        assert read_run_config(spec.config_class, run_dir) == config


BASE_CRITICISM = [
    n for n in FULL_BATCH
    if get_model(n).criticize.__func__ is FullBatchSpec.criticize.__func__
]  # fmt: skip


@pytest.mark.parametrize("name", BASE_CRITICISM)
def test_the_default_check_is_posterior_predictive(name, monkeypatch, tmp_path):
    # Replicated data must come from latents drawn from the fitted guide (a prior
    # predictive check would pass its own tests but answer another question).
    from ppl_models.fullbatch import spec as base

    guides = []
    replicate = base.replicate

    def spy(model, guide, *args, **kwargs):
        guides.append(guide)
        return replicate(model, guide, *args, **kwargs)

    monkeypatch.setattr(base, "replicate", spy)
    titles = []
    plot_ppc = base.plot_ppc

    def plot_spy(checks, title):
        titles.append(title)
        return plot_ppc(checks, title=title)

    monkeypatch.setattr(base, "plot_ppc", plot_spy)
    spec = get_model(name)
    config = dataclasses.replace(spec.config_class(), steps=5, ppc_samples=5)
    fit = spec.fit(config, "cpu", progress=False)
    numbers = fit.criticize(tmp_path)
    assert set(numbers) == {"ppc"}
    assert guides == [fit.guide]
    label = spec.label or spec.name
    assert titles == [f"{label}, {config.inference}: posterior predictive checks"]
    if spec.statistics.__func__ is FullBatchSpec.statistics.__func__:
        site = spec.observed_site
        names = ("mean", "standard deviation", "minimum", "maximum")
        assert set(numbers["ppc"]) == {f"{name} of {site}" for name in names}
