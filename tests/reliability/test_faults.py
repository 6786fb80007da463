"""Fault injection: NaN mid-training, Ctrl-C, out-of-memory, a process killed while
writing a checkpoint, and checkpoints that are truncated or belong to another run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from ppl_models.cli import main
from ppl_models.data import load_images
from ppl_models.errors import DataError, NumericalError, ResourceError
from ppl_models.inference import trainer as train_module
from ppl_models.io.checkpoint import load_checkpoint
from ppl_models.models.vae import VAE, TrainSettings, VAEConfig, train_vae
from ppl_models.models.vae.evaluate import evaluate_bounds
from tests.conftest import TEST_DEVICE, assert_same_parameters, interrupt_at


@pytest.fixture(scope="module")
def digits(device):
    return load_images("digits", binarize="threshold", device=device)


def small_vae(device: torch.device | str = TEST_DEVICE) -> VAE:
    torch.manual_seed(0)
    config = VAEConfig(image_shape=(8, 8), latent_dim=2, hidden_dims=(16,))
    return VAE(config).to(device)


STEPS_PER_EPOCH = 12  # 1500 digits in batches of 128


class NaNAfter(torch.nn.Module):
    """A decoder that returns NaN from its ``start``-th training call on."""

    def __init__(self, decoder: torch.nn.Module, start: int):
        super().__init__()
        self.decoder, self.start, self.calls = decoder, start, 0

    def forward(self, z):
        logits = self.decoder(z)
        if torch.is_grad_enabled():  # training steps, not evaluation
            self.calls += 1
            if self.calls >= self.start:
                return logits * float("nan")
        return logits


def test_nan_is_reported_at_its_step_and_the_last_checkpoint_survives(digits, tmp_path):
    vae = small_vae()
    bad_step = STEPS_PER_EPOCH + 5  # in the second epoch
    vae.model.decoder = NaNAfter(vae.model.decoder, bad_step)
    checkpoint = tmp_path / "checkpoint.pt"
    settings = TrainSettings(epochs=3, batch_size=128, lr=1e-3)
    with pytest.raises(NumericalError) as info:
        train_vae(vae, digits, settings, checkpoint_path=checkpoint, progress=False)
    message = str(info.value)
    assert f"at step {bad_step} (epoch 2)" in message
    assert "x (model)" in message
    assert "is intact" in message
    record = load_checkpoint(checkpoint, "vae")
    assert record["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in record["vae_state"].values())


def test_nan_stops_the_command_line_with_status_1(capsys, tmp_path):
    status = main(["fit", "vae", "--dataset", "digits", "--lr", "1e30", "--epochs", "2",
                   "--hidden-dim", "16", "--latent-dim", "2", "--device", "cpu",
                   "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1
    assert "NaN or infinite at step" in err and len(err.strip().splitlines()) == 1


def test_ppca_refuses_data_too_large_for_float32_and_stops_at_a_nonfinite_step():
    from ppl_models.models.ppca import fit_ppca

    x = torch.randn(100, 2) * 1e30  # finite, but its squares overflow float32
    with pytest.raises(DataError, match="spread too wide for float32"):
        fit_ppca(x, steps=50, device="cpu", progress=False)
    # Data within float32 that a step ruins are still stopped at their first step.
    with pytest.raises(NumericalError, match="NaN or infinite at step 2 of 50;"):
        fit_ppca(torch.randn(100, 2), steps=50, lr=1e6, device="cpu", progress=False)


def test_ppca_nan_stops_the_command_line_with_status_1_and_leaves_no_run(
    capsys, tmp_path
):
    out = tmp_path / "run"
    status = main(["fit", "ppca", "--lr", "1e6", "--steps", "300", "--device", "cpu",
                   "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1
    # Adam's first step is lr-sized, so the second step's gradient overflows.
    last = err.strip().splitlines()[-1]  # after the progress lines
    assert last.startswith("ppl-models: training stopped: ")
    assert "NaN or infinite at step 2 of 300; non-finite parameters:" in last
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("check_every, steps, calls", [(10, 40, 10), (None, 150, 100)])
def test_ppca_nan_watch_reads_at_its_interval_and_names_the_step(
    check_every, steps, calls, monkeypatch
):
    from ppl_models.inference import make_objective, run_svi
    from ppl_models.models.ppca import PPCA, make_elbo, make_guide

    model = PPCA(2, 1)
    guide = make_guide(model, "map")
    x = torch.randn(2, 50)
    objective = make_objective(model, guide, make_elbo("map"), x)
    optimizer = torch.optim.SGD(objective.parameters(), lr=1e-3)
    seen = []
    original = objective.forward

    def nan_from_step_7(*args):
        seen.append(1)
        loss = original(*args)
        return loss * float("nan") if len(seen) >= 7 else loss

    monkeypatch.setattr(objective, "forward", nan_from_step_7)
    interval = {} if check_every is None else {"check_every": check_every}  # 100
    with pytest.raises(NumericalError, match=f"at step 7 of {steps};"):
        run_svi(objective, optimizer, steps, x, progress=False, **interval)
    # Caught at the first read after step 7, not at the end.
    assert len(seen) == calls


class NaNGradientAfter(torch.nn.Module):
    """A decoder whose backward pass turns NaN from its ``start``-th training call
    on, while the loss itself stays finite."""

    def __init__(self, decoder: torch.nn.Module, start: int):
        super().__init__()
        self.decoder, self.start, self.calls = decoder, start, 0

    def forward(self, z):
        logits = self.decoder(z)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls >= self.start:
                logits.register_hook(lambda grad: grad * float("nan"))
        return logits


def test_nan_in_the_gradient_alone_is_caught_at_its_step(digits, tmp_path):
    vae = small_vae()
    bad_step = STEPS_PER_EPOCH + 3
    vae.model.decoder = NaNGradientAfter(vae.model.decoder, bad_step)
    checkpoint = tmp_path / "checkpoint.pt"
    settings = TrainSettings(epochs=3, batch_size=128, lr=1e-3)
    with pytest.raises(NumericalError) as info:
        train_vae(vae, digits, settings, checkpoint_path=checkpoint, progress=False)
    assert f"at step {bad_step} (epoch 2)" in str(info.value)
    record = load_checkpoint(checkpoint, "vae")
    assert record["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in record["vae_state"].values())


def sgd_instead_of_adam(monkeypatch):
    # Adam divides each step by the gradient's running scale, so a gradient spike
    # barely changes its step and clipping has little to prevent; with plain SGD
    # the step is the gradient itself, and clipping is what keeps it bounded.
    def sgd(params, lr):
        return torch.optim.SGD(params, lr=lr)

    monkeypatch.setattr(torch.optim, "Adam", sgd)


def test_gradient_clipping_prevents_a_divergence(digits, monkeypatch):
    sgd_instead_of_adam(monkeypatch)
    settings = TrainSettings(epochs=1, batch_size=128, lr=0.05)
    with pytest.raises(NumericalError, match="NaN or infinite at step"):
        train_vae(small_vae(), digits, settings, progress=False)
    clipped = TrainSettings(epochs=1, batch_size=128, lr=0.05, clip_grad=1.0)
    history = train_vae(small_vae(), digits, clipped, progress=False).history
    assert all(math.isfinite(v) for v in history.train_elbo + history.test_elbo)


def test_clip_grad_on_the_command_line_reaches_the_optimizer(capsys, tmp_path,
                                                            monkeypatch):  # fmt: skip
    sgd_instead_of_adam(monkeypatch)
    argv = ["fit", "vae", "--dataset", "digits", "--epochs", "1", "--lr", "0.05",
            "--hidden-dim", "16", "--latent-dim", "2", "--no-criticize",
            "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "plain")]) == 1
    assert "NaN or infinite" in capsys.readouterr().err
    status = main([*argv, "--clip-grad", "1", "--out", str(tmp_path / "clipped")])
    assert status == 0, capsys.readouterr().err


def test_ctrl_c_saves_the_last_finished_epoch_and_resume_is_exact(digits, tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    settings = TrainSettings(epochs=3, batch_size=128, lr=3e-3, checkpoint_every=5)

    def interrupt_after_two(history):
        if history.epochs_done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vae(small_vae(), digits, settings, checkpoint_path=checkpoint,
                  progress=False, on_epoch_end=interrupt_after_two)  # fmt: skip
    record = load_checkpoint(checkpoint, "vae", digits.device)
    assert record["epoch"] == 2
    resumed = small_vae()
    train_vae(resumed, digits, settings, resume_from=record, progress=False)
    straight = small_vae()
    train_vae(straight, digits, settings, progress=False)
    assert_same_parameters(straight.state_dict(), resumed.state_dict())


def test_ctrl_c_mid_epoch_saves_the_last_epoch_end_and_resume_is_exact(
    digits, tmp_path
):
    # Interrupted in the middle of epoch 2, after 5 of its steps have changed the
    # parameters: the checkpoint must hold the state at the end of epoch 1, as it
    # was then, and resuming from it must retrace the uninterrupted run exactly.
    checkpoint = tmp_path / "checkpoint.pt"
    settings = TrainSettings(epochs=3, batch_size=128, lr=3e-3, checkpoint_every=5)
    interrupted = small_vae()
    interrupt_at(interrupted.model.decoder, STEPS_PER_EPOCH + 6)
    with pytest.raises(KeyboardInterrupt):
        train_vae(interrupted, digits, settings, checkpoint_path=checkpoint,
                  progress=False)  # fmt: skip
    record = load_checkpoint(checkpoint, "vae", digits.device)
    assert record["epoch"] == 1

    one_epoch = small_vae()
    train_vae(one_epoch, digits, TrainSettings(epochs=1, batch_size=128, lr=3e-3),
              progress=False)  # fmt: skip
    assert_same_parameters(one_epoch.state_dict(), record["vae_state"])

    resumed = small_vae()
    train_vae(resumed, digits, settings, resume_from=record, progress=False)
    straight = small_vae()
    train_vae(straight, digits, settings, progress=False)
    assert_same_parameters(straight.state_dict(), resumed.state_dict())


def test_out_of_memory_in_training_stops_with_advice(digits, tmp_path, monkeypatch):
    checkpoint = tmp_path / "checkpoint.pt"
    calls = {"n": 0}
    real_step = train_module.svi_step

    def step_then_oom(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > STEPS_PER_EPOCH:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "svi_step", step_then_oom)
    settings = TrainSettings(epochs=2, batch_size=128)
    with pytest.raises(ResourceError, match="smaller --batch-size") as info:
        train_vae(
            small_vae(), digits, settings, checkpoint_path=checkpoint, progress=False
        )
    # It names the epoch that ran out (the second) and the batch size to lower.
    assert str(info.value) == (
        "the device ran out of memory in epoch 2 with batch size 128: try a smaller "
        f"--batch-size; the last checkpoint, {checkpoint}, is intact"
    )
    assert load_checkpoint(checkpoint, "vae")["epoch"] == 1


def test_out_of_memory_in_evaluation_falls_back_to_smaller_chunks(monkeypatch):
    import ppl_models.models.vae.evaluate as evaluate

    def fake_parts(vae, x, num_samples=1):
        if num_samples * x.shape[0] > 50:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        log_lik = (-x.sum(-1)).expand(num_samples, x.shape[0])
        zero = torch.zeros_like(log_lik)
        return {"log_lik": log_lik, "log_prior": zero, "log_q": zero}

    monkeypatch.setattr(evaluate, "log_weight_parts", fake_parts)
    x = torch.rand(40, 64)
    bounds = evaluate_bounds(None, x, num_samples=20)
    assert bounds["iwae"] == pytest.approx(float(-x.sum(-1).mean()), rel=1e-6)


KILLER = textwrap.dedent(
    """
    import sys, torch
    from ppl_models.io.checkpoint import save_checkpoint
    path = sys.argv[1]
    payload = {"big": torch.randn(4_000_000)}
    i = 0
    while True:
        i += 1
        save_checkpoint(path, "vae", {**payload, "round": i})
        print(i, flush=True)
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.7])
def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(
    tmp_path, delay
):
    path = tmp_path / "checkpoint.pt"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "1"  # one complete write
        time.sleep(delay)
    finally:
        process.kill()  # SIGKILL: no handler, no cleanup
        process.wait()
    record = load_checkpoint(path, "vae")
    assert record["round"] >= 1 and record["big"].shape == (4_000_000,)


def _fit_digits(out, latent_dim, capsys):
    status = main(["fit", "vae", "--dataset", "digits", "--epochs", "1",
                   "--hidden-dim", "16", "--latent-dim", str(latent_dim),
                   "--no-criticize", "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert status == 0, capsys.readouterr().err


def test_checkpoint_from_another_configuration_is_refused(capsys, tmp_path):
    _fit_digits(tmp_path / "a", 2, capsys)
    _fit_digits(tmp_path / "b", 3, capsys)
    capsys.readouterr()
    (tmp_path / "a" / "checkpoint.pt").write_bytes(
        (tmp_path / "b" / "checkpoint.pt").read_bytes()
    )
    for argv in (["criticize", str(tmp_path / "a")],
                 ["fit", "vae", "--dataset", "digits", "--epochs", "2", "--resume",
                  "--out", str(tmp_path / "a")]):  # fmt: skip
        status = main(argv)
        err = capsys.readouterr().err
        assert status == 2
        assert "another configuration: latent_dim 3 in the checkpoint, 2" in err


def test_truncated_checkpoint_is_refused_at_the_command_line(capsys, tmp_path):
    _fit_digits(tmp_path / "run", 2, capsys)
    path = tmp_path / "run" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    status = main(["evaluate", str(tmp_path / "run"), "--iwae-samples", "2"])
    err = capsys.readouterr().err
    assert status == 2 and "is not a checkpoint: it is not the archive" in err


def test_same_command_twice_gives_the_same_numbers(capsys, tmp_path):
    summaries = []
    for name in ("one", "two"):
        _fit_digits(tmp_path / name, 2, capsys)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        timing = ("fit_seconds", "images_per_second")
        summaries.append({k: v for k, v in summary.items() if k not in timing})
    assert summaries[0] == summaries[1]
