"""Data-parallel training on the CPU: 2 processes under ``torchrun``, gloo between
them. Each launch takes some seconds (two interpreters import torch and Pyro).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ppl_models.cli import main
from ppl_models.data.batches import shard_indices
from ppl_models.io.checkpoint import load_checkpoint

WORKER = Path(__file__).with_name("worker.py")
ROOT = Path(__file__).parents[2]


def torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Launch 2 processes on this machine, as a user's ``torchrun`` does."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PPL_MODELS_DIST_TIMEOUT": "20",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", *args]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )


def results(out: Path, scenario: str) -> list[dict]:
    return [
        torch.load(out / f"{scenario}-rank{r}.pt", weights_only=True) for r in (0, 1)
    ]


@pytest.mark.parametrize("num_images, size", [(50, 2), (51, 2), (10, 3), (7, 4)])
def test_the_shards_of_an_epoch_are_disjoint_cover_it_and_are_of_one_length(
    num_images, size
):
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(0))
    shards = [shard_indices(num_images, r, size, order) for r in range(size)]
    assert len({len(s) for s in shards}) == 1  # every rank takes as many steps
    taken = torch.cat(shards)
    assert set(taken.tolist()) == set(range(num_images))  # they cover the epoch
    # only the padding (the order's first images again) is taken twice
    assert len(taken) - num_images == -num_images % size
    assert len(taken) - len(set(taken.tolist())) == -num_images % size


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("trained")
    done = torchrun(str(WORKER), "trained", str(out))
    assert done.returncode == 0, done.stderr[-8000:]
    return results(out, "trained")


def test_after_training_the_parameters_are_identical_on_both_ranks(trained):
    first, second = trained
    for name, value in first["straight"].items():
        assert torch.equal(value, second["straight"][name]), name
    assert first["history"] == second["history"]


def test_one_plus_one_resumed_epochs_equal_two_straight_bitwise(trained):
    for rank in trained:
        for name, value in rank["straight"].items():
            assert torch.equal(value, rank["resumed"][name]), name


def test_a_sharded_evaluation_gives_the_single_process_numbers(trained):
    # 1188 images: blocks 0 and 2 on rank 0, block 1 on rank 1, summed
    for rank in trained:
        assert rank["sharded"] == pytest.approx(rank["whole"], rel=1e-6)
    assert trained[0]["sharded"] == trained[1]["sharded"]


def test_two_ranks_of_batch_b_step_as_one_process_of_batch_2b(trained):
    # The exact relation: the summed gradients of the ranks' shards are the gradient
    # on the union of their batches, which one process takes over the same order.
    for rank in trained:
        for name, value in rank["data_parallel"].items():
            torch.testing.assert_close(value, rank["one_process"][name])


def test_a_nan_on_rank_1_stops_both_ranks_at_the_same_step(tmp_path):
    done = torchrun(str(WORKER), "nonfinite", str(tmp_path))
    assert done.returncode == 0, done.stderr[-8000:]
    first, second = results(tmp_path, "nonfinite")
    assert first["step"] is not None and first["step"] == second["step"], (
        first,
        second,
    )
    # the checkpoint of the clean epoch is intact
    assert load_checkpoint(tmp_path / "nan.pt", "vae")["epoch"] == 1


def test_a_killed_rank_ends_the_job_with_an_error_not_a_hang(tmp_path):
    start = time.perf_counter()
    done = torchrun(str(WORKER), "killed", str(tmp_path), timeout=120)
    assert done.returncode != 0
    assert time.perf_counter() - start < 90
    # torchrun names the rank that failed and its exit status
    assert "exitcode  : 3" in done.stderr and "local_rank: 1" in done.stderr


def test_torchrun_fits_a_run_that_evaluate_and_criticize_read(tmp_path, capsys):
    out = tmp_path / "run"
    done = torchrun("-m", "ppl_models", "fit", "vae", "--dataset", "digits",
                    "--device", "cpu", "--epochs", "2", "--hidden-dim", "16",
                    "--latent-dim", "2", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-8000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["test_elbo"]) == 2
    # one writer: the log's epochs are rank 0's alone
    assert done.stderr.count("epoch 2/2:") == 1
    assert load_checkpoint(out / "checkpoint.pt", "vae")["world_size"] == 2
    assert main(["evaluate", str(out), "--iwae-samples", "5", "--device", "cpu"]) == 0
    assert main(["criticize", str(out), "--device", "cpu"]) == 0
    # a resume at another world size is refused
    status = main(["fit", "vae", "--dataset", "digits", "--device", "cpu",
                   "--epochs", "3", "--resume", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "written by 2 process(es)" in err, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "ppca"], "model 'ppca' trains on all its data at every step"),
        (["fit", "vae", "--compile", "default"], "--compile is not supported under"),
    ],
)
def test_what_cannot_train_data_parallel_is_refused_before_joining(
    tmp_path, capsys, monkeypatch, argv, message
):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
