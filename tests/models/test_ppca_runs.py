"""PPCA run directories: what ``fit`` and ``criticize`` write (config, summary, loss
table, checkpoint, figures), checked against a fit made through the Python API with
the same arguments, and the round trip of a checkpoint back into a fit."""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import replace

import numpy as np
import pyro
import pytest
import torch

import ppl_models
from ppl_models.cli.fitting import add_fit_options
from ppl_models.device import resolve_device
from ppl_models.errors import CheckpointError
from ppl_models.fullbatch import fit as fullbatch_fit
from ppl_models.io.checkpoint import load_checkpoint
from ppl_models.io.run_dir import CHECKPOINT, read_config
from ppl_models.models.ppca import (
    INFERENCE_METHODS,
    PPCAFit,
    PPCARunConfig,
    PPCASpec,
    fit_ppca,
)
from ppl_models.models.ppca import criticize as ppca_criticize
from ppl_models.registry import RunOptions
from ppl_models.run_config import read_run_config
from ppl_models.seeding import derived_seed
from tests.conftest import TEST_DEVICE

# The device under test: on a GPU the run, its checkpoint and its reload stay there.
DEVICE = resolve_device(TEST_DEVICE)

# Small but not degenerate: three dimensions, two axes, a noise scale that is not
# the default, so a value that is dropped or swapped on the way shows up.
MEANFIELD_ARGS = dict(
    inference="meanfield",
    data=None,
    num_datapoints=60,
    data_dim=3,
    latent_dim=2,
    noise_scale=0.4,
    steps=10,
    lr=0.03,
    ppc_samples=8,
    seed=11,
    checkpoint_every=4,
)
#: a fresh fit, not compiled
PLAIN = RunOptions()


def fit_args(**kwargs) -> PPCARunConfig:
    """The config ``ppl-models fit ppca`` hands to ``PPCASpec.fit_run``."""
    return PPCARunConfig(**kwargs)


def reference_fit(args: PPCARunConfig, data=None):
    """The same fit through the Python API."""
    return fit_ppca(
        data,
        inference=args.inference,
        num_datapoints=args.num_datapoints,
        data_dim=args.data_dim,
        latent_dim=args.latent_dim,
        noise_scale=args.noise_scale,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        device=DEVICE,
        progress=False,
    )


def reference_criticism(fit, ppc_samples: int, seed: int):
    """Replay and predictive checks drawn, as documented, from the derived seed."""
    pyro.set_rng_seed(derived_seed(seed, "criticism"))
    generated = fit.replay()
    checks = fit.posterior_predictive_check(num_samples=ppc_samples)
    return generated, checks


class Figures(dict):
    """File name -> figure, for every figure a run saves."""


def run_and_capture(monkeypatch, action):
    """Run ``action`` with ``save_figure`` recording the figures instead of
    rendering PNGs (the command-line tests check that the files are written)."""
    figures = Figures()
    for module in (fullbatch_fit, ppca_criticize):
        monkeypatch.setattr(
            module, "save_figure", lambda fig, path: figures.__setitem__(path, fig)
        )
    return action(), figures


@pytest.fixture(scope="module")
def meanfield_run(tmp_path_factory):
    """A mean-field fit into a run directory, its figures, and a reference fit."""
    run_dir = tmp_path_factory.mktemp("ppca-meanfield")
    args = fit_args(**MEANFIELD_ARGS)
    with pytest.MonkeyPatch.context() as monkeypatch:
        returned, figures = run_and_capture(
            monkeypatch, lambda: PPCASpec.fit_run(args, run_dir, DEVICE, PLAIN)
        )
    reference = reference_fit(args)
    return {
        "run_dir": run_dir,
        "args": args,
        "returned": returned,
        "figures": {
            path.relative_to(run_dir).as_posix(): f for path, f in figures.items()
        },
        "reference": reference,
        "criticism": reference_criticism(reference, args.ppc_samples, args.seed),
    }


def read_summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_config_records_every_argument_needed_to_rebuild_the_fit(meanfield_run):
    config = json.loads((meanfield_run["run_dir"] / "config.json").read_text())
    assert config == {
        "model": "ppca",
        "inference": "meanfield",
        "data": None,
        "num_datapoints": 60,
        "data_dim": 3,
        "latent_dim": 2,
        "noise_scale": pytest.approx(0.4),
        "mean": "zero",
        "steps": 10,
        "checkpoint_every": 4,
        "lr": 0.03,
        "seed": 11,
        "ppc_samples": 8,
        "against_nuts": False,
        "nuts_samples": 500,
        "nuts_warmup": 300,
    }


def test_summary_reports_the_fit_the_python_api_makes(meanfield_run):
    summary = read_summary(meanfield_run["run_dir"])
    reference = meanfield_run["reference"]
    generated, checks = meanfield_run["criticism"]
    losses = reference.losses.tolist()
    expected = {
        "model": "ppca",
        "inference": "meanfield",
        "device": str(DEVICE),
        "compile": None,
        "seed": 11,
        "steps": 10,
        "initial_loss": pytest.approx(losses[0], rel=1e-6),
        "final_loss": pytest.approx(losses[-1], rel=1e-6),
        **{k: pytest.approx(v, rel=1e-5) for k, v in reference.axis_cosines().items()},
        "mu": [0.0, 0.0, 0.0],
        "noise_scale": pytest.approx(0.4),
        "noise_scale_learned": False,
        "noise_scale_closed_form": pytest.approx(
            reference.closed_form.noise_scale_ml, rel=1e-6
        ),
        "fit_seconds": summary["fit_seconds"],
        "replay_cov_rel_error": pytest.approx(
            reference.replay_cov_rel_error(generated), rel=1e-5
        ),
        "ppc": {
            name: {
                "observed": pytest.approx(check.observed, rel=1e-5),
                "p_value": pytest.approx(check.p_value, abs=1e-9),
            }
            for name, check in checks.items()
        },
    }
    matrices = {
        "w": reference.w,
        "w_closed_form": reference.w_closed_form,
        "w_true": reference.w_true,
        "w_scale": reference.w_scale,
    }
    for key, value in matrices.items():
        expected[key] = summary[key]
        assert np.allclose(summary[key], value.cpu().numpy(), rtol=1e-5, atol=1e-7), key
    assert summary == expected
    assert set(summary["ppc"]) == {
        "variance of x1",
        "variance of x2",
        "variance of x3",
        "largest eigenvalue of cov(x)",
    }
    assert isinstance(summary["fit_seconds"], float) and summary["fit_seconds"] > 0
    # The statistics and the replay error by their definitions, in numpy.
    x = reference.x.double().cpu().numpy()
    observed = {f"variance of x{d + 1}": x[d].var(ddof=1) for d in range(3)}
    observed["largest eigenvalue of cov(x)"] = np.linalg.eigvalsh(np.cov(x)).max()
    for name, value in observed.items():
        assert summary["ppc"][name]["observed"] == pytest.approx(value, rel=1e-4)
    cov_obs, cov_gen = np.cov(x), np.cov(generated.double().cpu().numpy())
    rel_error = np.linalg.norm(cov_gen - cov_obs) / np.linalg.norm(cov_obs)
    assert summary["replay_cov_rel_error"] == pytest.approx(rel_error, rel=1e-4)
    # fit_run returns what it wrote.
    assert meanfield_run["returned"] == summary


def test_loss_table_lists_every_step_from_one(meanfield_run):
    with open(meanfield_run["run_dir"] / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    losses = meanfield_run["reference"].losses.tolist()
    assert [int(row["step"]) for row in rows] == list(range(1, 11))
    assert [float(row["loss"]) for row in rows] == pytest.approx(losses, rel=1e-6)


def test_figures_show_the_loss_the_replay_and_the_checks(meanfield_run):
    figures = meanfield_run["figures"]
    reference = meanfield_run["reference"]
    generated, checks = meanfield_run["criticism"]
    assert set(figures) == {"loss.png", "replay.png", "ppc.png"}

    (ax,) = figures["loss.png"].axes
    assert ax.get_title() == "PPCA, meanfield: loss trace"
    (line,) = ax.lines
    assert line.get_label() == "meanfield"
    assert list(line.get_xdata()) == list(range(1, 11))
    assert list(line.get_ydata()) == pytest.approx(reference.losses.tolist(), rel=1e-6)

    (ax,) = figures["replay.png"].axes
    assert ax.get_title() == "PPCA, meanfield: observed vs replayed latents"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["observed", "replayed (meanfield)"]
    observed, replayed = (c.get_offsets() for c in ax.collections)
    assert np.allclose(observed, reference.x.T[:, :2].cpu().numpy())
    assert np.allclose(replayed, generated.T[:, :2].cpu().numpy(), rtol=1e-4, atol=1e-5)

    figure = figures["ppc.png"]
    assert figure.get_suptitle() == "PPCA, meanfield: posterior predictive checks"
    assert [ax.get_xlabel() for ax in figure.axes] == list(checks)
    for ax, check in zip(figure.axes, checks.values(), strict=True):
        # one histogram of ppc_samples replicated values per statistic
        assert sum(patch.get_height() for patch in ax.patches) == 8
        assert ax.lines[0].get_xdata()[0] == pytest.approx(check.observed, rel=1e-5)


def test_criticize_reloads_the_run_and_reports_the_same_numbers(
    meanfield_run, monkeypatch
):
    run_dir = meanfield_run["run_dir"]
    before = read_summary(run_dir)
    summary, figures = run_and_capture(
        monkeypatch, lambda: PPCASpec.criticize_run(run_dir, DEVICE)
    )
    assert summary == before == read_summary(run_dir)
    assert {path.name for path in figures} == {"replay.png", "ppc.png"}
    # The fit is rebuilt on the device asked for (on a CPU the default hides it).
    load_fit, devices = PPCAFit.from_checkpoint, []
    monkeypatch.setattr(
        PPCAFit,
        "from_checkpoint",
        classmethod(
            lambda cls, spec, config, record, device: (
                devices.append(device) or load_fit(spec, config, record, device)
            )
        ),
    )
    run_and_capture(monkeypatch, lambda: PPCASpec.criticize_run(run_dir, DEVICE))
    assert devices == [DEVICE]
    assert all(path.parent == run_dir for path in figures)
    ppc = next(f for path, f in figures.items() if path.name == "ppc.png")
    for ax in ppc.axes:
        assert sum(patch.get_height() for patch in ax.patches) == 8  # ppc_samples


def test_load_fit_rebuilds_the_fitted_model_and_guide(meanfield_run):
    run_dir = meanfield_run["run_dir"]
    reference = meanfield_run["reference"]
    fit = ppl_models.load_fit(run_dir, DEVICE)  # the public entry, any model
    assert fit.inference == "meanfield"
    assert fit.model.data_dim == 3 and fit.model.latent_dim == 2
    assert float(fit.model.noise_scale) == pytest.approx(0.4)
    assert fit.x.device == fit.w.device == DEVICE
    assert torch.equal(fit.x, reference.x)
    assert torch.equal(fit.losses.cpu(), reference.losses.cpu())
    assert torch.equal(fit.w_true.cpu(), reference.w_true.cpu())
    assert torch.allclose(fit.w, reference.w)
    assert torch.allclose(fit.w_scale, reference.w_scale)
    assert fit.fit_seconds == read_summary(run_dir)["fit_seconds"]
    record = load_checkpoint(run_dir / CHECKPOINT, "ppca")
    assert set(record) == {
        "format",
        "model",
        "settings",
        "model_state",
        "guide_state",
        "data",
        "extras",
        "losses",
        "fit_seconds",
        "step",
        "optimizer_state",
        "rng",
    }
    assert record["step"] == 10 and record["optimizer_state"]["state"]


def test_a_run_on_user_data_records_the_file_and_no_true_axes(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    data = rng.normal(size=(80, 2)) * [2.0, 0.5]
    path = tmp_path / "data.npy"
    np.save(path, data)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    args = fit_args(**{**MEANFIELD_ARGS, "inference": "map", "data": path, "steps": 5})
    args.ppc_samples = 5
    summary, figures = run_and_capture(
        monkeypatch, lambda: PPCASpec.fit_run(args, run_dir, DEVICE, PLAIN)
    )
    config = read_config(run_dir)
    assert config["data"] == str(path)
    assert config["num_datapoints"] == 80 and config["data_dim"] == 2
    assert "w_true" not in summary and "axis_cosine_true" not in summary
    assert "w_scale" not in summary  # MAP has no posterior scales
    reference = reference_fit(args, data=data)
    assert np.allclose(summary["w"], reference.w.cpu().numpy(), rtol=1e-5, atol=1e-7)
    assert "extras" not in load_checkpoint(run_dir / CHECKPOINT, "ppca")
    fit = PPCASpec.load_fit(run_dir, DEVICE)
    assert fit.w_true is None and fit.inference == "map"
    assert torch.allclose(fit.w, reference.w)
    (ax,) = next(f for p, f in figures.items() if p.name == "loss.png").axes
    assert ax.get_title() == "PPCA, map: loss trace"


def test_load_fit_refuses_a_checkpoint_that_does_not_fit_the_config(meanfield_run):
    run_dir = meanfield_run["run_dir"]
    config = replace(read_run_config(PPCARunConfig, run_dir), latent_dim=1)
    record = PPCASpec.read_checkpoint(run_dir, DEVICE)
    with pytest.raises(CheckpointError) as error:
        PPCAFit.from_checkpoint(PPCASpec, config, record, DEVICE)
    message = "the checkpoint does not fit the run's configuration"
    assert str(error.value).startswith(message)


def test_demo_runs_fit_each_inference_method_once():
    parser = argparse.ArgumentParser()
    add_fit_options(parser, PPCASpec)
    runs = PPCASpec.demo_runs()
    assert set(runs) == {f"ppca-{name}" for name in INFERENCE_METHODS}
    for name, argv in runs.items():
        args = parser.parse_args([*argv, "--out", "demo"])
        assert f"ppca-{args.inference}" == name
        assert args.overwrite  # a second `make demo` replaces the first


def test_a_compiled_run_compiles_the_elbo_and_says_so(tmp_path, monkeypatch):
    # Record the mode instead of paying for a compilation (tests/cli compares a
    # compiled run's numbers with a plain run's).
    from ppl_models.inference import svi

    modes = []
    monkeypatch.setattr(
        svi,
        "CompiledObjective",
        lambda objective, mode: modes.append(mode) or objective,
    )
    args = fit_args(**{**MEANFIELD_ARGS, "steps": 2, "ppc_samples": 2})
    options = RunOptions(compile="reduce-overhead")
    summary, _ = run_and_capture(
        monkeypatch, lambda: PPCASpec.fit_run(args, tmp_path, DEVICE, options)
    )
    assert modes == ["reduce-overhead"]
    assert summary["compile"] == "reduce-overhead"
