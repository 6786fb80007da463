"""The VAE on the command line: fit, evaluate, criticize, resume, and bad input."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from ppl_models.cli import main
from ppl_models.io.checkpoint import load_checkpoint

DIGITS = ["fit", "vae", "--dataset", "digits", "--latent-dim", "2", "--hidden-dim",
          "32", "--batch-size", "256", "--lr", "3e-3", "--device", "cpu"]  # fmt: skip


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_fit_evaluate_criticize(capsys, tmp_path):
    out = tmp_path / "run"
    status, stdout, err = run_cli(capsys, *DIGITS, "--epochs", "2", "--out", out)
    assert status == 0, err
    # Output that is not a terminal gets one line per epoch, not a bar or steps.
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    summary = json.loads((out / "summary.json").read_text())
    for key in ["model", "dataset", "architecture", "latent_dim", "prior", "elbo",
                "epochs", "batch_size", "device", "seed", "train_elbo", "test_elbo",
                "fit_seconds", "images_per_second"]:  # fmt: skip
        assert key in summary, key
    assert len(summary["train_elbo"]) == len(summary["test_elbo"]) == 2
    assert summary["images_per_second"] > 0
    figures = ["nelbo.png", "samples.png", "reconstructions.png", "manifold.png",
               "latent_space.png", "ppc.png", "ppc_pixels.png"]  # fmt: skip
    for name in [*figures, "checkpoint.pt"]:
        assert (out / name).is_file(), name
    assert "test_elbo" in stdout

    status, _, err = run_cli(capsys, "evaluate", out, "--iwae-samples", "10",
                             "--iwae-images", "100", "--device", "cpu")  # fmt: skip
    assert status == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iwae_samples"] == 10
    assert summary["test_iwae"] >= summary["test_elbo_iwae_samples"]
    assert summary["test_elbo_iwae_samples"] == pytest.approx(
        -(summary["test_distortion"] + summary["test_rate"])
    )
    assert summary["iwae_images"] == 100
    # A number of images the test set cannot give is refused, and nothing recorded.
    before = (out / "summary.json").read_text()
    option = "ppl-models evaluate: error: argument --iwae-images: "
    for images, message in [
        ("0", option + "iwae_images must be a positive integer, got 0"),
        ("-5", option + "iwae_images must be a positive integer, got -5"),
        ("1000000", "ppl-models: error: iwae_images=1000000, but the test set has "
         "297 images"),
    ]:  # fmt: skip
        status, _, err = run_cli(capsys, "evaluate", out, "--iwae-images", images,
                                 "--device", "cpu")  # fmt: skip
        assert status == 2 and err.strip() == message
    assert (out / "summary.json").read_text() == before

    (out / "samples.png").unlink()
    status, _, err = run_cli(capsys, "criticize", out, "--device", "cpu")
    assert status == 0, err
    assert (out / "samples.png").is_file()
    assert "mean ink per image" in json.loads((out / "summary.json").read_text())["ppc"]


@pytest.mark.parametrize(
    "variant",
    [[], ["--guide", "iaf", "--flows", "2", "--elbo", "iwae", "--num-particles", "3"]],
    ids=["normal-trace", "iaf-iwae"],
)
def test_resume_continues_exactly(capsys, tmp_path, variant):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = [*DIGITS, "--no-criticize", *variant]
    assert run_cli(capsys, *common, "--epochs", "2", "--out", straight)[0] == 0
    assert run_cli(capsys, *common, "--epochs", "1", "--out", resumed)[0] == 0
    status, _, err = run_cli(
        capsys, *common, "--epochs", "2", "--resume", "--out", resumed
    )
    assert status == 0, err
    a = load_checkpoint(straight / "checkpoint.pt", "vae")
    b = load_checkpoint(resumed / "checkpoint.pt", "vae")
    assert a["epoch"] == b["epoch"] == 2
    for name, value in a["vae_state"].items():
        assert torch.equal(value, b["vae_state"][name]), name
    sa = json.loads((straight / "summary.json").read_text())
    sb = json.loads((resumed / "summary.json").read_text())
    assert sa["test_elbo"] == sb["test_elbo"]


def test_an_existing_run_is_not_overwritten_by_accident(capsys, tmp_path):
    out = tmp_path / "run"
    assert (
        run_cli(capsys, *DIGITS, "--epochs", "1", "--no-criticize", "--out", out)[0]
        == 0
    )
    before = (out / "checkpoint.pt").read_bytes()
    status, _, err = run_cli(capsys, *DIGITS, "--epochs", "1", "--out", out)
    assert status == 2 and "already holds a run" in err
    assert (out / "checkpoint.pt").read_bytes() == before


def _write_truncated_mnist(root):
    mnist = root / "mnist"
    mnist.mkdir(parents=True)
    payload = gzip.compress(b"\x00\x00\x08\x03" + (60000).to_bytes(4, "big") * 1)
    # all four there, so that what is refused is the truncated images file
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):  # fmt: skip
        (mnist / name).write_bytes(payload)


@pytest.fixture
def offline(monkeypatch):
    import ppl_models.data.mnist as mnist

    def refuse(url, dest, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "_fetch", refuse)


BAD = [
    (["--latent-dim", "0"], "latent_dim must be a positive integer"),
    (["--hidden-dim", "0"], "hidden_dims must be a positive integer"),
    (["--prior", "mixture", "--elbo", "meanfield"], "mixture prior"),
    (["--batch-size", "0"], "batch_size must be a positive integer"),
    (["--epochs", "0"], "epochs must be a positive integer"),
    (["--lr", "-1"], "lr must be a positive"),
    (["--binarize", "none", "--likelihood", "bernoulli"], "binarized"),
    (["--architecture", "transformer"], "invalid choice: 'transformer'"),
    (["--resume"], "holds no checkpoint"),
    (["--guide", "flow"], "invalid choice: 'flow'"),
    (["--guide", "iaf", "--flows", "0"], "flows must be a positive integer, got 0"),
    (["--elbo", "iwae", "--num-particles", "0"], "num_particles must be a positive"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_invocations_exit_2_and_leave_nothing(capsys, tmp_path, extra, message):
    out = tmp_path / "out"
    status, _, err = run_cli(capsys, *DIGITS, "--epochs", "1", *extra, "--out", out)
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not out.exists()


def test_missing_mnist_offline_says_where_to_put_it(capsys, tmp_path, offline):
    out = tmp_path / "out"
    status, _, err = run_cli(capsys, "fit", "vae", "--dataset", "mnist", "--data-dir",
                             tmp_path / "data", "--out", out)  # fmt: skip
    assert status == 2
    assert "digits" in err and str(tmp_path / "data") in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_truncated_mnist_is_a_clear_error(capsys, tmp_path, offline):
    _write_truncated_mnist(tmp_path / "data")
    out = tmp_path / "out"
    status, _, err = run_cli(capsys, "fit", "vae", "--dataset", "mnist", "--data-dir",
                             tmp_path / "data", "--out", out)  # fmt: skip
    assert status == 2
    assert "train-images-idx3-ubyte.gz" in err
    assert not out.exists()
