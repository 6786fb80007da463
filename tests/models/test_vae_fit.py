"""A VAE fitted from Python is a ``Fit``: it records its settings as a run's config,
saves a run directory that ``load_fit`` rebuilds, and that run goes on with
``ppl-models fit vae --resume`` exactly as a longer fit would have gone."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import ppl_models
from ppl_models.cli import main
from ppl_models.errors import DataError
from ppl_models.io.checkpoint import load_checkpoint
from ppl_models.models.vae import TrainSettings, VAERunConfig, fit_vae

SMALL = dict(train_images=300, test_images=100, latent_dim=2, hidden_dims=(16,),
             batch_size=64, lr=3e-3, seed=4, device="cpu", progress=False)  # fmt: skip


def as_json(value):
    return json.loads(json.dumps(value))


def test_a_fit_from_python_records_its_settings_as_a_runs_config():
    fit = fit_vae("digits", epochs=1, elbo="meanfield", **SMALL)
    assert isinstance(fit, ppl_models.Fit)
    # As `fit vae --dataset digits ...` with the same options would record them.
    assert fit.config == VAERunConfig(
        dataset="digits", train_images=300, test_images=100, latent_dim=2,
        hidden_dims=(16,), batch_size=64, lr=3e-3, seed=4, epochs=1,
        elbo="meanfield", likelihood="bernoulli",
    )  # fmt: skip
    summary = fit.summary()
    assert summary["model"] == "vae" and summary["elbo"] == "meanfield"
    assert summary["epochs_done"] == 1
    assert summary["test_elbo"] == fit.history.test_elbo
    assert (summary["device"], summary["compile"]) == ("cpu", None)


def test_a_saved_fit_loads_back_and_resumes_on_the_command_line(tmp_path, capsys):
    fit = fit_vae("digits", epochs=1, **SMALL)
    fit.save(tmp_path / "runs" / "run")  # folders made as needed
    fit.save(tmp_path / "runs" / "run")  # and written over
    loaded = ppl_models.load_fit(tmp_path / "runs" / "run", device="cpu")
    assert loaded.config == fit.config
    assert as_json(loaded.summary()) == as_json(fit.summary())
    for name, value in fit.vae.state_dict().items():
        assert torch.equal(loaded.vae.state_dict()[name], value), name

    # One more epoch on the command line ends where a two-epoch fit does.
    run = str(tmp_path / "runs" / "run")
    argv = ["fit", "vae", "--out", run, "--resume", "--epochs", "2", "--no-criticize",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    straight = fit_vae("digits", epochs=2, **SMALL)
    resumed = load_checkpoint(tmp_path / "runs" / "run" / "checkpoint.pt", "vae")
    expected = straight.checkpoint()
    for name, value in expected["vae_state"].items():
        assert torch.equal(resumed["vae_state"][name], value), name
    assert resumed["history"]["test_elbo"] == expected["history"]["test_elbo"]


def test_criticize_draws_the_same_numbers_each_time_and_keeps_the_callers_draws(
    tmp_path,
):
    fit = fit_vae("digits", epochs=1, **SMALL)
    torch.manual_seed(11)
    expected_next = torch.rand(2)
    torch.manual_seed(11)
    first = fit.criticize(tmp_path / "figures" / "a")  # folders made as needed
    assert torch.equal(torch.rand(2), expected_next)
    assert fit.criticize(tmp_path / "figures" / "a") == first  # and written over
    assert 0.0 <= first["ppc_pixel_extreme_fraction"] <= 1.0
    assert (tmp_path / "figures" / "a" / "samples.png").is_file()
    # The draws come from the run's seed.
    fit.config = replace(fit.config, seed=5)
    assert fit.criticize(tmp_path / "c") != first


def test_fit_vae_trains_as_each_of_its_settings_says(monkeypatch, capsys):
    from ppl_models.inference import svi

    modes = []
    monkeypatch.setattr(
        svi,
        "CompiledObjective",
        lambda objective, mode: modes.append(mode) or objective,
    )
    epochs = []
    fit = fit_vae(
        "digits", binarize="threshold", epochs=2, batch_size=50, lr=0.01,
        elbo="meanfield", num_particles=2, clip_grad=5.0, checkpoint_every=2, seed=3,
        compile="max-autotune", train_images=200, test_images=60, latent_dim=2,
        hidden_dims=(8,), device="cpu", progress=True,
        on_epoch_end=lambda history: epochs.append(history.epochs_done),
    )  # fmt: skip
    assert fit.settings == TrainSettings(
        elbo="meanfield", num_particles=2, epochs=2, batch_size=50, lr=0.01, seed=3,
        clip_grad=5.0, checkpoint_every=2, compile="max-autotune",
    )  # fmt: skip
    assert modes == ["max-autotune"] and epochs == [1, 2]
    assert fit.data.binarize == fit.config.binarize == "threshold"
    assert (fit.data.train.shape[0], fit.data.test.shape[0]) == (200, 60)
    assert "epoch 2/2" in capsys.readouterr().err  # the bar, asked for
    # Grey pixels get the continuous Bernoulli unless a likelihood is given.
    grey = dict(SMALL, binarize="none", epochs=1, train_images=100)
    assert fit_vae("digits", **grey).vae.config.likelihood == "continuous_bernoulli"
    normal = fit_vae("digits", likelihood="normal", **grey)
    assert normal.vae.config.likelihood == "normal"


def test_fit_vae_defaults_are_the_command_lines():
    fit = fit_vae(train_images=64, test_images=32, latent_dim=2, progress=False)
    assert fit.settings == TrainSettings()  # 5 epochs of 128 at lr 1e-3, seed 0
    assert fit.data.name == "digits" and fit.vae.device == torch.device("cpu")
    assert fit.config == VAERunConfig(
        dataset="digits", train_images=64, test_images=32, latent_dim=2,
        likelihood="bernoulli",
    )  # fmt: skip


def test_evaluate_defaults_to_100_samples_from_seed_0_on_any_number_of_images():
    fit = fit_vae("digits", epochs=1, **{**SMALL, "test_images": 40})
    default = fit.evaluate(num_images=20)
    assert default == fit.evaluate(100, 20, seed=0)
    assert default != fit.evaluate(10, 20, seed=0)
    assert fit.evaluate(2, 40)["iwae"] == fit.evaluate(2)["iwae"]  # all 40 images


def test_fit_vae_reads_mnist_from_the_folder_it_is_given(tmp_path, monkeypatch):
    import ppl_models.data.mnist as mnist

    def offline(url, dest, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "_fetch", offline)
    monkeypatch.setenv("PPL_MODELS_DATA", str(tmp_path / "default"))
    with pytest.raises(DataError) as error:
        fit_vae("mnist", data_dir=tmp_path / "given", device="cpu", progress=False)
    assert str(tmp_path / "given" / "mnist") in str(error.value)


def test_a_users_own_images_fit_and_the_fit_records_their_name():
    from ppl_models.data import ImageData

    pixels = torch.rand(100, 64).round()
    labels = torch.zeros(100, dtype=torch.long)
    data = ImageData(pixels, labels, pixels[:20], labels[:20], (8, 8), "threshold",
                     "my-images")  # fmt: skip
    fit = fit_vae(data, epochs=1, hidden_dims=(8,), latent_dim=2, progress=False,
                  device="cpu")  # fmt: skip
    assert fit.config.dataset == "my-images"
    assert len(fit.history.test_elbo) == 1
