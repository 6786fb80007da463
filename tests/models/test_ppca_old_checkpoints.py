"""Run directories from before PPCA was built on FullBatchSpec still load: their
checkpoints kept the data as ``x`` and the true axes as ``w_true``, and their
``config.json`` listed PPCA's settings first. Criticise, ``load_fit`` and
``--resume`` read them as today's."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import ppl_models
from ppl_models.cli import main
from ppl_models.io.checkpoint import load_checkpoint, save_checkpoint
from tests.models.test_registered_fits import assert_same_checkpoint

SMALL = ["--num-datapoints", "200", "--ppc-samples", "10", "--device", "cpu"]
OLD_CONFIG_KEYS = ("model", "inference", "data", "num_datapoints", "data_dim",
                   "latent_dim", "noise_scale", "steps", "checkpoint_every", "lr",
                   "ppc_samples", "seed")  # fmt: skip


def fit(capsys, out, *extra) -> int:
    status = main(["fit", "ppca", *SMALL, "--out", str(out), *map(str, extra)])
    capsys.readouterr()
    return status


def make_old(run) -> None:
    """Rewrite a run's checkpoint and config.json as the old PPCA code wrote them."""
    record = load_checkpoint(run / "checkpoint.pt", "ppca")
    old = {
        "model_state": record["model_state"],
        "guide_state": record["guide_state"],
        "x": record["data"][0],
        "losses": record["losses"],
        "fit_seconds": record["fit_seconds"],
        "w_true": record["extras"]["w_true"],
        "step": record["step"],
        "optimizer_state": record["optimizer_state"],
        "rng": record["rng"],
    }
    save_checkpoint(run / "checkpoint.pt", "ppca", old)
    config = json.loads((run / "config.json").read_text())
    config = {key: config[key] for key in OLD_CONFIG_KEYS}
    (run / "config.json").write_text(json.dumps(config, indent=2) + "\n")


@pytest.mark.parametrize("inference", ["map", "meanfield"])
def test_an_old_run_is_criticised_loaded_and_resumed(inference, capsys, tmp_path):
    old, new, straight = tmp_path / "old", tmp_path / "new", tmp_path / "straight"
    for run in (old, new):
        assert fit(capsys, run, "--inference", inference, "--steps", 20) == 0
    make_old(old)
    assert set(load_checkpoint(old / "checkpoint.pt", "ppca")) >= {"x", "w_true"}
    summary = json.loads((new / "summary.json").read_text())

    # criticize: the same numbers as the run had
    (old / "summary.json").write_text(json.dumps({"model": "ppca"}))
    assert main(["criticize", str(old)]) == 0
    criticised = json.loads((old / "summary.json").read_text())
    for key in ("replay_cov_rel_error", "ppc"):
        assert criticised[key] == summary[key], key

    # load_fit: the data, the true axes and the fitted axes
    loaded, fresh = (ppl_models.load_fit(run, device="cpu") for run in (old, new))
    assert torch.equal(loaded.x, fresh.x)
    assert torch.equal(loaded.w_true, fresh.w_true)
    assert torch.equal(loaded.w, fresh.w) and torch.equal(loaded.losses, fresh.losses)
    assert loaded.summary()["final_loss"] == summary["final_loss"]

    # --resume: on from the old checkpoint, as a straight run, in today's format
    assert fit(capsys, old, "--steps", 40, "--resume") == 0
    assert fit(capsys, straight, "--inference", inference, "--steps", 40) == 0
    assert_same_checkpoint(
        load_checkpoint(old / "checkpoint.pt", "ppca"),
        load_checkpoint(straight / "checkpoint.pt", "ppca"),
    )


def test_fit_ppca_resumes_from_an_old_record(tmp_path):
    from ppl_models.models.ppca import fit_ppca

    path = tmp_path / "checkpoint.pt"
    small = dict(num_datapoints=50, device="cpu", progress=False)
    fit_ppca(steps=5, checkpoint_path=path, **small)
    record = load_checkpoint(path, "ppca")
    record["x"] = record.pop("data")[0]
    record["w_true"] = record.pop("extras")["w_true"]
    pristine = copy.deepcopy(record)
    resumed = fit_ppca(steps=10, resume_from=record, **small)
    straight = fit_ppca(steps=10, **small)
    assert torch.equal(resumed.losses, straight.losses)
    assert torch.equal(resumed.w_true, straight.w_true)
    # The spec's own fit reads an old record too, with the config it was given.
    from ppl_models.models.ppca import PPCASpec

    config = PPCASpec.resolve_config(
        PPCASpec.config_class(num_datapoints=50, steps=10, checkpoint_every=5)
    )
    # (A resumed fit adds its seconds to the record's: it went on, not afresh.)
    again = PPCASpec.fit(
        config, "cpu", resume_from={**pristine, "fit_seconds": 1000.0}, progress=False
    )
    assert torch.equal(again.losses, straight.losses) and again.fit_seconds > 1000
