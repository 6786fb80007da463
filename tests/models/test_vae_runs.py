"""VAE run directories: which settings a run takes from the command line and which
from its ``config.json``, refusing to resume from a
checkpoint of another configuration, rebuilding a fit from a directory, and the
summary numbers and plot written as training goes."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from ppl_models.cli.fitting import add_common_fit_arguments
from ppl_models.data import load_images
from ppl_models.errors import CheckpointError, DataError, UsageError
from ppl_models.io.checkpoint import load_checkpoint, save_checkpoint
from ppl_models.io.run_dir import CHECKPOINT, write_config
from ppl_models.models.vae import VAE, TrainSettings, VAEConfig, runs
from ppl_models.models.vae.experiment import VAESpec
from ppl_models.models.vae.train import History, checkpoint_payload
from tests.conftest import assert_same_parameters

HISTORY = History(train_elbo=[-50.0, -45.0], test_elbo=[-52.0, -47.5],
                  train_seconds=[1.5, 2.5], train_images=600)  # fmt: skip


def fit_args(*argv: str) -> argparse.Namespace:
    """``fit vae`` arguments as the command line parses them."""
    parser = argparse.ArgumentParser()
    add_common_fit_arguments(parser)
    VAESpec.add_fit_arguments(parser)
    return parser.parse_args(["--dataset", "digits", "--out", "unused", *argv])


def write_run(run_dir, vae_config: dict, **config) -> dict:
    """A run directory as ``fit`` leaves it: config.json and a checkpoint of an
    untrained VAE with ``vae_config``, after the epochs of ``HISTORY``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run = {key: getattr(fit_args(), key) for key in runs.RUN_KEYS}
    run.update(latent_dim=2, hidden_dims=[16], binarize="threshold", model="vae")
    run.update(config)
    write_config(run_dir, run)
    torch.manual_seed(0)
    vae = VAE(VAEConfig(**vae_config))
    payload = checkpoint_payload(vae, torch.optim.Adam(vae.parameters()), HISTORY)
    save_checkpoint(run_dir / CHECKPOINT, "vae", payload)
    return payload


DIGITS_VAE = dict(image_shape=(8, 8), latent_dim=2, hidden_dims=(16,))


@pytest.mark.parametrize("argv,latent_dim", [
    ([], 50),
    (["--architecture", "conv"], 16),
    (["--architecture", "conv", "--latent-dim", "3"], 3),
    (["--latent-dim", "7"], 7),
])  # fmt: skip
def test_a_fresh_run_takes_the_command_line_and_a_latent_size_by_architecture(
    tmp_path, argv, latent_dim
):
    run, record = runs.run_and_checkpoint(fit_args(*argv), tmp_path, "cpu")
    assert record is None
    assert list(run) == list(runs.RUN_KEYS)
    assert run["latent_dim"] == latent_dim
    assert run["dataset"] == "digits" and run["hidden_dims"] == [400]


def test_resume_takes_the_runs_settings_from_config_json(tmp_path, device):
    payload = write_run(tmp_path, DIGITS_VAE, lr=2e-3, seed=4)
    args = fit_args("--resume", "--latent-dim", "9", "--lr", "0.5")
    run, record = runs.run_and_checkpoint(args, tmp_path, device)
    assert (run["latent_dim"], run["lr"], run["seed"]) == (2, 2e-3, 4)
    assert record["epoch"] == 2
    # The checkpoint (written on the CPU) is read onto the run's device.
    assert {v.device for v in record["vae_state"].values()} == {device}
    state = {k: v.cpu() for k, v in record["vae_state"].items()}
    assert_same_parameters(state, payload["vae_state"])


def test_resume_without_a_checkpoint_says_there_is_none(tmp_path):
    with pytest.raises(UsageError) as error:
        runs.run_and_checkpoint(fit_args("--resume"), tmp_path, "cpu")
    assert str(error.value) == f"--resume: {tmp_path} holds no checkpoint to resume"


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    write_run(tmp_path, {**DIGITS_VAE, "latent_dim": 3})
    with pytest.raises(CheckpointError) as error:
        runs.run_and_checkpoint(fit_args("--resume"), tmp_path, "cpu")
    assert str(error.value) == (
        f"{tmp_path / CHECKPOINT} was written for another configuration: "
        "latent_dim 3 in the checkpoint, 2 in config.json"
    )


def test_every_setting_that_differs_from_the_checkpoint_is_named():
    record = {"config": VAEConfig(**DIGITS_VAE).to_dict()}
    run = {"latent_dim": 4, "hidden_dims": [16], "activation": "relu",
           "likelihood": None}  # fmt: skip
    with pytest.raises(CheckpointError) as error:
        runs.check_checkpoint_config(record, run, "run/checkpoint.pt")
    assert str(error.value) == (
        "run/checkpoint.pt was written for another configuration: "
        "latent_dim 2 in the checkpoint, 4 in config.json; "
        "activation 'softplus' in the checkpoint, 'relu' in config.json"
    )
    # Settings config.json leaves unset (None) are the checkpoint's.
    same = {"latent_dim": 2, "hidden_dims": [16], "likelihood": None}
    assert runs.check_checkpoint_config(record, same, "x") == VAEConfig(**DIGITS_VAE)


def test_load_fit_rebuilds_the_run_from_its_directory(tmp_path, device):
    payload = write_run(tmp_path, DIGITS_VAE, train_images=200, test_images=50,
                        batch_size=64, lr=2e-3, seed=5, elbo="meanfield")  # fmt: skip
    fit = runs.load_fit(tmp_path, device)
    data = load_images("digits", binarize="threshold", device=device,
                       limit_train=200, limit_test=50)  # fmt: skip
    assert torch.equal(fit.data.train, data.train)
    assert torch.equal(fit.data.test, data.test)
    assert fit.data.binarize == "threshold"
    assert fit.settings == TrainSettings(elbo="meanfield", num_particles=1, epochs=2,
                                         batch_size=64, lr=2e-3, seed=5)  # fmt: skip
    assert fit.history == HISTORY
    assert fit.vae.config == VAEConfig(**DIGITS_VAE)
    assert {p.device for p in fit.vae.parameters()} == {device}
    assert_same_parameters(
        {k: v.cpu() for k, v in fit.vae.state_dict().items()}, payload["vae_state"]
    )


def test_load_fit_reads_mnist_from_the_folder_it_is_given(tmp_path, monkeypatch):
    import ppl_models.data.mnist as mnist

    def offline(url, dest, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "_fetch", offline)
    monkeypatch.setenv("PPL_MODELS_DATA", str(tmp_path / "default"))
    mnist_vae = dict(image_shape=(28, 28), latent_dim=2, hidden_dims=(16,))
    write_run(tmp_path / "run", mnist_vae, dataset="mnist")
    with pytest.raises(DataError) as error:
        runs.load_fit(tmp_path / "run", torch.device("cpu"), tmp_path / "given")
    assert str(tmp_path / "given" / "mnist") in str(error.value)


def test_load_fit_refuses_a_checkpoint_of_another_configuration(tmp_path):
    write_run(tmp_path, {**DIGITS_VAE, "hidden_dims": (8,)})
    with pytest.raises(CheckpointError) as error:
        runs.load_fit(tmp_path, torch.device("cpu"))
    assert str(error.value) == (
        f"{tmp_path / CHECKPOINT} was written for another configuration: "
        "hidden_dims (8,) in the checkpoint, (16,) in config.json"
    )


def test_load_fit_refuses_weights_that_do_not_fit_the_checkpoints_configuration(
    tmp_path,
):
    # A damaged checkpoint: its config says latent_dim 2, its weights are for 3.
    write_run(tmp_path, DIGITS_VAE)
    record = load_checkpoint(tmp_path / CHECKPOINT, "vae")
    record["vae_state"] = VAE(VAEConfig(**{**DIGITS_VAE, "latent_dim": 3})).state_dict()
    save_checkpoint(tmp_path / CHECKPOINT, "vae", record)
    with pytest.raises(CheckpointError) as error:
        runs.load_fit(tmp_path, torch.device("cpu"))
    assert str(error.value).startswith(
        f"{tmp_path / CHECKPOINT} does not fit the run's configuration: "
    )


def test_the_summary_holds_each_epoch_and_the_training_speed():
    summary = runs.history_summary(HISTORY)
    assert summary == {
        "epochs_done": 2,
        "train_elbo": [-50.0, -45.0],
        "test_elbo": [-52.0, -47.5],
        "fit_seconds": 4.0,
        "images_per_second": 150.0,  # 600 images in 4 seconds
    }
    json.dumps(summary)  # it goes into summary.json


def test_the_nelbo_plot_shows_train_and_test_by_epoch(tmp_path, monkeypatch):
    saved = []
    real_save = runs.save_figure

    def keep(figure, path):
        saved.append(figure)
        return real_save(figure, path)

    monkeypatch.setattr(runs, "save_figure", keep)
    runs.save_nelbo_plot(HISTORY, tmp_path)
    assert (tmp_path / "nelbo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ((figure,),) = [saved]
    (ax,) = figure.axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (
        "VAE: negative ELBO", "epoch", "negative ELBO (nats per image)",
    )  # fmt: skip
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["train"].get_xdata()) == [1, 2]
    assert list(lines["train"].get_ydata()) == [50.0, 45.0]
    assert list(lines["test"].get_ydata()) == [52.0, 47.5]
