"""VAE run directories: which settings a run takes from the command line and which
from its ``config.json`` (of today's format and of the one before), refusing to
resume from a checkpoint of another configuration, rebuilding a fit from a
directory, and the summary numbers and plot written as training goes."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ppl_models.cli.fitting import add_fit_options, check_run_dir, fit_config
from ppl_models.cli.options import from_namespace
from ppl_models.data import load_images
from ppl_models.errors import CheckpointError, DataError, UsageError
from ppl_models.io.checkpoint import load_checkpoint, save_checkpoint
from ppl_models.io.run_dir import CHECKPOINT, write_config
from ppl_models.models.vae import VAE, TrainSettings, VAEConfig, VAERunConfig, runs
from ppl_models.models.vae import history as vae_history
from ppl_models.models.vae.experiment import VAESpec
from ppl_models.models.vae.history import History
from ppl_models.models.vae.state import checkpoint_payload
from ppl_models.run_config import read_run_config, write_run_config
from tests.conftest import assert_same_parameters

HISTORY = History(train_elbo=[-50.0, -45.0], test_elbo=[-52.0, -47.5],
                  train_seconds=[1.5, 2.5], train_images=600)  # fmt: skip

#: config.json as ``fit vae --dataset digits`` wrote it before it recorded the epochs,
#: clip_grad and checkpoint_every: a run directory of then must still load
OLD_CONFIG = {
    "dataset": "digits", "train_images": None, "test_images": None,
    "binarize": "dynamic", "architecture": "mlp", "latent_dim": 50,
    "hidden_dims": [400], "activation": "softplus", "base_depth": 32,
    "prior": "normal", "mixture_components": 10, "likelihood": "bernoulli",
    "elbo": "trace", "num_particles": 1, "batch_size": 128, "lr": 0.001, "seed": 0,
    "model": "vae",
}  # fmt: skip


def fit_args(*argv: str) -> argparse.Namespace:
    """``fit vae`` arguments as the command line parses them."""
    parser = argparse.ArgumentParser()
    add_fit_options(parser, VAESpec)
    return parser.parse_args(["--dataset", "digits", "--out", "unused", *argv])


def write_run(run_dir, vae_config: dict, **config) -> dict:
    """A run directory as ``fit`` left it: config.json (of the old format) and a
    checkpoint of an untrained VAE with ``vae_config``, after the epochs of
    ``HISTORY``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run = {**OLD_CONFIG, "latent_dim": 2, "hidden_dims": [16], "binarize": "threshold"}
    write_config(run_dir, {**run, **config})
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
    config = fit_config(VAESpec, fit_args(*argv), tmp_path, resume=False)
    assert config == from_namespace(VAERunConfig, fit_args(*argv))
    resolved = config.resolved()
    assert resolved.latent_dim == latent_dim
    assert resolved.dataset == "digits" and resolved.hidden_dims == (400,)
    assert resolved == replace(config, latent_dim=latent_dim, likelihood="bernoulli")


@pytest.mark.parametrize("argv,likelihood", [
    ([], "bernoulli"),
    (["--binarize", "threshold"], "bernoulli"),
    (["--binarize", "none"], "continuous_bernoulli"),
    (["--binarize", "none", "--likelihood", "normal"], "normal"),
])  # fmt: skip
def test_the_likelihood_is_by_binarization_unless_given(argv, likelihood):
    config = from_namespace(VAERunConfig, fit_args(*argv))
    assert config.resolved().likelihood == likelihood


def test_the_config_gives_the_networks_and_the_training_their_settings():
    config = from_namespace(VAERunConfig, fit_args(
        "--latent-dim", "3", "--hidden-dim", "8", "4", "--prior", "mixture",
        "--epochs", "2", "--lr", "0.01", "--clip-grad", "5", "--seed", "9"
    ))  # fmt: skip
    network = config.resolved().network_settings()
    assert VAEConfig(image_shape=(8, 8), **network) == VAEConfig(
        image_shape=(8, 8), latent_dim=3, hidden_dims=(8, 4), prior="mixture"
    )
    assert config.train_settings(compile="default") == TrainSettings(
        epochs=2, lr=0.01, clip_grad=5.0, seed=9, compile="default"
    )


def test_resume_takes_the_runs_settings_from_config_json(tmp_path, device):
    payload = write_run(tmp_path, DIGITS_VAE, lr=2e-3, seed=4)
    args = fit_args(
        *["--resume", "--latent-dim", "2", "--dataset", "digits", "--epochs", "7"],
        *["--clip-grad", "2", "--no-criticize", "--data-dir", "d"],
    )
    config = fit_config(VAESpec, args, tmp_path, resume=True)
    assert (config.latent_dim, config.lr, config.seed) == (2, 2e-3, 4)
    # Only the resumable settings, and those config.json leaves out, are new.
    assert (config.epochs, config.clip_grad, config.checkpoint_every) == (7, 2.0, 1)
    assert config.no_criticize and config.data_dir == Path("d")
    record = runs.resume_record(tmp_path, config, device)
    assert record["epoch"] == 2
    # The checkpoint (written on the CPU) is read onto the run's device.
    assert {v.device for v in record["vae_state"].values()} == {device}
    state = {k: v.cpu() for k, v in record["vae_state"].items()}
    assert_same_parameters(state, payload["vae_state"])


def test_resume_refuses_options_that_would_change_the_runs_settings(tmp_path):
    write_run(tmp_path, DIGITS_VAE, lr=2e-3, seed=4)
    # Given as they are in the run (lr) or taken anew (epochs), options are fine.
    args = fit_args("--resume", "--lr", "0.002", "--epochs", "7")
    assert fit_config(VAESpec, args, tmp_path, resume=True).epochs == 7
    args = fit_args("--resume", "--latent-dim", "9", "--lr", "0.5", "--epochs", "7")
    with pytest.raises(UsageError) as error:
        fit_config(VAESpec, args, tmp_path, resume=True)
    assert str(error.value) == (
        "--resume goes on with the run's own settings, but the command line changes "
        "--latent-dim 9 (the run has 2), --lr 0.5 (the run has 0.002): leave those "
        "options out (a resume can change only --epochs, --clip-grad, "
        "--checkpoint-every), or fit anew with --overwrite or another --out"
    )


def test_resume_without_a_checkpoint_says_there_is_none(tmp_path):
    message = f"--resume: {tmp_path} holds no checkpoint to resume"
    with pytest.raises(UsageError) as error:
        check_run_dir(VAESpec, tmp_path, resume=True, overwrite=False)
    assert str(error.value) == message
    # A fit that stopped before its first checkpoint left its config.
    write_config(tmp_path, OLD_CONFIG)
    with pytest.raises(UsageError) as error:
        check_run_dir(VAESpec, tmp_path, resume=True, overwrite=False)
    assert str(error.value) == message


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    write_run(tmp_path, {**DIGITS_VAE, "latent_dim": 3})
    config = read_run_config(VAERunConfig, tmp_path)
    with pytest.raises(CheckpointError) as error:
        runs.resume_record(tmp_path, config, "cpu")
    assert str(error.value) == (
        f"{tmp_path / CHECKPOINT} was written for another configuration: "
        "latent_dim 3 in the checkpoint, 2 in config.json"
    )


def test_every_setting_that_differs_from_the_checkpoint_is_named():
    record = {"config": VAEConfig(**DIGITS_VAE).to_dict()}
    config = VAERunConfig(latent_dim=4, hidden_dims=(16,), activation="relu")
    with pytest.raises(CheckpointError) as error:
        runs.check_checkpoint_config(record, config, "run/checkpoint.pt")
    assert str(error.value) == (
        "run/checkpoint.pt was written for another configuration: "
        "latent_dim 2 in the checkpoint, 4 in config.json; "
        "activation 'softplus' in the checkpoint, 'relu' in config.json"
    )
    # Settings config.json leaves unset (None) are the checkpoint's.
    same = VAERunConfig(latent_dim=2, hidden_dims=(16,), likelihood=None)
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


def test_load_fit_takes_the_training_settings_a_fit_records_now(tmp_path):
    write_run(tmp_path, DIGITS_VAE)
    # The settings a resume takes anew, as a resume interrupted at once leaves them
    config = replace(read_run_config(VAERunConfig, tmp_path), epochs=9,
                     clip_grad=2.0, checkpoint_every=3)  # fmt: skip
    write_run_config(tmp_path, "vae", config)
    fit = runs.load_fit(tmp_path, torch.device("cpu"))
    # The epochs are those done, not those asked for.
    assert fit.settings == TrainSettings(epochs=2, batch_size=128, clip_grad=2.0,
                                         checkpoint_every=3)  # fmt: skip
    assert fit.vae.config == VAEConfig(**DIGITS_VAE)


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
    summary = vae_history.history_summary(HISTORY)
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
    real_save = vae_history.save_figure

    def keep(figure, path):
        saved.append(figure)
        return real_save(figure, path)

    monkeypatch.setattr(vae_history, "save_figure", keep)
    vae_history.save_nelbo_plot(HISTORY, tmp_path)
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


@pytest.mark.parametrize(
    "given, latent_dim",
    [
        (dict(), 50),
        (dict(architecture="conv"), 16),
        (dict(architecture="conv", latent_dim=3), 3),
        (dict(latent_dim=7), 7),
    ],
)
def test_a_run_left_without_a_latent_size_gets_its_architectures(given, latent_dim):
    # README: --latent-dim defaults to 50 for the mlp and 16 for the conv networks.
    config = VAERunConfig(**given)
    assert config.latent_dim == given.get("latent_dim")
    resolved = config.resolved()
    assert resolved.latent_dim == latent_dim
    assert replace(resolved, latent_dim=config.latent_dim, likelihood=None) == config


@pytest.mark.parametrize("dataset", ["", 3, None])
def test_a_run_refuses_a_dataset_that_is_not_a_name(dataset):
    with pytest.raises(UsageError, match="dataset must be a name"):
        VAERunConfig(dataset=dataset)
