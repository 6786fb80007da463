"""``ppl-models fit vae --tensorboard``: each epoch's numbers and images in an event
file, a run that trains exactly as one without, and a clear error without the
extra."""

from __future__ import annotations

import pytest
import torch

from ppl_models.cli import main
from ppl_models.io.checkpoint import load_checkpoint
from tests.conftest import block_imports

SMALL = ["fit", "vae", "--dataset", "digits", "--epochs", "2", "--latent-dim", "2",
         "--hidden-dim", "16", "--train-images", "300", "--test-images", "64",
         "--no-criticize", "--device", "cpu"]  # fmt: skip


def test_tensorboard_logs_each_epoch_and_changes_nothing_else(capsys, tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason='needs the tensorboard extra: pip install "ppl_models[tensorboard]"',
    )
    assert main([*SMALL, "--tensorboard", "--out", str(tmp_path / "board")]) == 0
    assert main([*SMALL, "--out", str(tmp_path / "plain")]) == 0
    events = event_accumulator.EventAccumulator(
        str(tmp_path / "board" / "tensorboard"), size_guidance={"images": 0}
    )
    events.Reload()
    scalars = {"elbo/train", "elbo/test", "speed/epoch_seconds", "grad_norm/train"}
    assert scalars | {"speed/images_per_second"} == set(events.Tags()["scalars"])
    for tag in scalars:
        assert [e.step for e in events.Scalars(tag)] == [1, 2]
    for tag in ("samples", "reconstructions"):
        images = events.Images(tag)
        assert [i.step for i in images] == [1, 2]
        assert (images[0].width, images[0].height) == (8 * 8, 2 * 8)
    # Its draws come from a stream of their own: the training is the same.
    board, plain = (
        load_checkpoint(tmp_path / run / "checkpoint.pt", "vae")
        for run in ("board", "plain")
    )
    for name, value in plain["vae_state"].items():
        assert torch.equal(board["vae_state"][name], value), name
    # The gradient norm logged is the epoch's mean that the run's history keeps.
    logged = [e.value for e in events.Scalars("grad_norm/train")]
    assert logged == pytest.approx(board["history"]["grad_norm"], rel=1e-6)
    assert all(norm > 0 for norm in logged)


def test_tensorboard_without_the_extra_is_refused_before_any_file(
    capsys, monkeypatch, tmp_path
):
    block_imports(monkeypatch, "torch.utils.tensorboard")
    assert main([*SMALL, "--tensorboard", "--out", str(tmp_path / "run")]) == 2
    assert 'pip install "ppl_models[tensorboard]"' in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_without_the_option_nothing_is_logged(monkeypatch, tmp_path):
    from ppl_models.models.vae import fit_vae

    monkeypatch.chdir(tmp_path)
    fit_vae("digits", epochs=1, latent_dim=2, hidden_dims=(16,), train_images=200,
            test_images=32, device="cpu", progress=False)  # fmt: skip
    assert not any(tmp_path.iterdir())
