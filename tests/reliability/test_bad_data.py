"""Data that pass the shape and NaN checks yet break a fit: refused before anything
is written, in one line at the command line, with what to change. And the one
line that says MNIST is missing.
"""

from __future__ import annotations

import json
import math
import socket
import urllib.error

import numpy as np
import pytest
import torch

from ppl_models.cli import main
from ppl_models.data import ImageData, mnist
from ppl_models.errors import DataError, UsageError
from ppl_models.models.ppca import closed_form, fit_ppca, subspace_cosine
from ppl_models.models.ppca.experiment import (
    MAX_PRIOR_PULL,
    PRIOR_W_SCALE,
    prior_pull_note,
)
from ppl_models.models.vae import fit as vae_fit
from ppl_models.models.vae import fit_vae
from ppl_models.validation import MAX_TOTAL_VARIANCE, check_float32_scale

QUICK = ["--steps", "20", "--ppc-samples", "10", "--device", "cpu"]


def refused(capsys, argv: list[str]) -> str:
    """Run the command line, which must exit with status 2 and one line on stderr
    and no traceback; return that line."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def fit_file(capsys, tmp_path, data: np.ndarray) -> str:
    """``ppl-models fit ppca --data`` on ``data``, refused; no run directory."""
    np.save(tmp_path / "data.npy", data)
    out = tmp_path / "run"
    line = refused(capsys, ["fit", "ppca", *QUICK, "--out", str(out),
                            "--data", str(tmp_path / "data.npy")])  # fmt: skip
    assert not out.exists()
    return line


def scaled(x: np.ndarray, pull: float) -> np.ndarray:
    """``x`` rescaled about its mean so that its principal variance is ``pull`` x
    N x PRIOR_W_SCALE**2, shifted away from zero as a user's data would be."""
    centred = x - x.mean(axis=0)
    top = np.linalg.eigvalsh(centred.T @ centred / len(x)).max()
    limit = pull * len(x) * PRIOR_W_SCALE**2
    return centred * math.sqrt(limit / top) + 5.0


def correlated(n: int, seed: int = 0) -> np.ndarray:
    mix = np.array([[3.0, 1.0, 0.5], [0.0, 1.0, 0.2], [0.0, 0.0, 0.5]])
    return np.random.default_rng(seed).normal(size=(n, 3)) @ mix


# --- 1: fewer than two points ------------------------------------------------


def test_one_row_of_data_is_refused(capsys, tmp_path):
    line = fit_file(capsys, tmp_path, np.random.default_rng(0).normal(size=(1, 3)))
    assert line == (
        "ppl-models: error: data has 1 row: at least 2 are needed, as the data's "
        "covariance needs two points"
    )
    with pytest.raises(DataError, match="data has 1 row"):
        fit_ppca(np.ones((1, 3)), steps=2, device="cpu", progress=False)


def test_one_simulated_point_is_refused(capsys, tmp_path):
    out = tmp_path / "run"
    line = refused(capsys, ["fit", "ppca", *QUICK, "--num-datapoints", "1",
                            "--out", str(out)])  # fmt: skip
    assert line.endswith("num_datapoints=1: at least 2 are needed, as the data's "
                         "covariance needs two points")  # fmt: skip
    assert not out.exists()
    with pytest.raises(UsageError, match="num_datapoints=1"):
        fit_ppca(num_datapoints=1, steps=2, device="cpu", progress=False)


# --- 2: data on a scale the model cannot fit ---------------------------------


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(0).normal(size=(100, 3)) * 1e20,
        np.random.default_rng(0).integers(2**61, 2**62, (100, 3), dtype=np.int64),
    ],
    ids=["1e20", "int64-near-2**62"],
)
def test_data_on_a_huge_scale_are_refused_with_the_divisor(capsys, tmp_path, data):
    line = fit_file(capsys, tmp_path, data)
    assert "spread too wide for float32" in line and "divide it by" in line
    # From Python too, before a step: float32 cannot square their spread.
    with pytest.raises(DataError, match="spread too wide for float32"):
        fit_ppca(data, steps=2, device="cpu", progress=False)


def test_a_fit_the_prior_pulls_from_maximum_likelihood_says_so(capsys, tmp_path):
    x = correlated(200)
    # Just outside: fitted, with a warning and a note in the summary; dividing by
    # the number the note gives brings the data inside.
    outside = scaled(x, MAX_PRIOR_PULL * 1.05)
    np.save(tmp_path / "data.npy", outside)
    out = tmp_path / "run"
    assert main(["fit", "ppca", *QUICK, "--out", str(out),
                 "--data", str(tmp_path / "data.npy")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "note: the prior on w (sd 2) pulls the axes toward zero" in err
    note = json.loads((out / "summary.json").read_text())["prior_note"]
    assert note.startswith("the prior on w (sd 2) pulls the axes toward zero")
    divide_by = float(note.split("divide the data by ")[1].split()[0])
    centred = torch.from_numpy(outside / divide_by).float()
    assert prior_pull_note(centred, centre=True) is None
    # Just inside: no note, and the fit is maximum likelihood's but for the
    # prior's small pull: the same axis, its length within 7%, the same noise.
    inside = scaled(x, MAX_PRIOR_PULL * 0.95)
    fit = fit_ppca(inside, inference="collapsed", device="cpu", progress=False)
    assert "prior_note" not in fit.summary()
    exact = closed_form(fit.x, 1)
    assert subspace_cosine(fit.w, exact.w) > 0.9999
    assert 0.93 < float(fit.w.norm() / exact.w.norm()) <= 1.0
    assert fit.noise_scale == pytest.approx(exact.noise_scale_ml, rel=0.02)
    # Far outside, the note is in a Python fit's summary too, and it is true: the
    # axes are far shorter than maximum likelihood's.
    far = fit_ppca(scaled(x, 30.0), inference="collapsed", device="cpu",
                   progress=False)  # fmt: skip
    assert "prior_note" in far.summary()
    assert float(far.w.norm() / closed_form(far.x, 1).w.norm()) < 0.5


def test_the_float32_boundary_on_both_sides():
    base = correlated(100)
    base = base - base.mean(axis=0)
    variance = (base**2).sum() / len(base)

    def at(ratio: float) -> np.ndarray:
        return base * math.sqrt(ratio * MAX_TOTAL_VARIANCE / variance)

    with pytest.raises(DataError, match=r"divide it by 1\.1 or more"):
        check_float32_scale(at(1.1))
    with pytest.raises(DataError, match="spread too wide for float32"):
        fit_ppca(at(1.1), steps=2, device="cpu", progress=False)
    # Just inside, every number of the fit and its checks is finite (the prior
    # still shrinks w on this scale, and the summary's prior_note says so).
    fit = fit_ppca(at(0.9), inference="collapsed", steps=30, device="cpu",
                   progress=False)  # fmt: skip
    numbers = [v for v in fit.summary().values() if isinstance(v, float)]
    numbers.append(fit.replay_cov_rel_error(fit.replay()))
    checks = fit.posterior_predictive_check(num_samples=5).values()
    numbers.extend(check.observed for check in checks)
    assert all(math.isfinite(v) for v in numbers)


# --- 3: no variance ----------------------------------------------------------


def test_constant_data_are_refused(capsys, tmp_path):
    line = fit_file(capsys, tmp_path, np.ones((100, 3)))
    assert line == (
        "ppl-models: error: data has no variance: all 100 rows are the same "
        "(1, 1, 1); the model needs data that vary"
    )
    with pytest.raises(DataError, match="no variance"):
        fit_ppca(torch.ones(100, 3), steps=2, device="cpu", progress=False)


def test_one_constant_column_among_varying_ones_fits(capsys, tmp_path):
    x = correlated(200)
    x[:, 1] = 7.0
    np.save(tmp_path / "data.npy", x)
    status = main(["fit", "ppca", *QUICK, "--out", str(tmp_path / "run"),
                   "--data", str(tmp_path / "data.npy")])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert "Infinity" not in (tmp_path / "run" / "summary.json").read_text()
    fit = fit_ppca(x, inference="collapsed", device="cpu", progress=False)
    assert subspace_cosine(fit.w, fit.w_closed_form) > 0.999
    assert abs(float(fit.w[1, 0])) < 1e-3  # nothing along the constant column
    assert fit.noise_scale == pytest.approx(fit.closed_form.noise_scale_ml, rel=0.02)


# --- 4: bad arguments from Python --------------------------------------------


def test_a_fractional_seed_is_refused_by_name():
    for data in (None, correlated(20)):
        with pytest.raises(UsageError, match="seed must be an integer"):
            fit_ppca(data, seed=1.5, num_datapoints=20, steps=2, device="cpu")


def images(dtype=torch.float32, shape=(8, 8), name="digits") -> ImageData:
    generator = torch.Generator().manual_seed(0)
    pixels = shape[0] * shape[1]
    train = torch.rand(64, pixels, generator=generator).round().to(dtype)
    test = torch.rand(16, pixels, generator=generator).round().to(dtype)
    labels = torch.zeros(80, dtype=torch.long)
    return ImageData(train, labels[:64], test, labels[64:], shape, "threshold", name)


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if fit_vae starts to train."""

    def train_vae(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(vae_fit, "train_vae", train_vae)


SMALL = {"epochs": 1, "latent_dim": 2, "hidden_dims": (8,), "device": "cpu",
         "progress": False}  # fmt: skip


def test_float64_images_are_taken_as_float32():
    data = images(torch.float64)
    assert data.train.dtype == data.test.dtype == torch.float32
    fit = fit_vae(images(torch.float64), **SMALL)
    assert math.isfinite(fit.history.train_elbo[-1])
    numpy = ImageData(data.train.numpy(), data.train_labels, data.test.numpy(),
                      data.test_labels, (8, 8), "threshold", "digits")  # fmt: skip
    assert numpy.train.dtype == torch.float32


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: images(shape=(0, 8)), r"image_shape must be \(height, width\), two "
         r"positive integers, got \(0, 8\)"),
        (lambda: images(torch.uint8), r"must hold floating-point pixels in \[0, 1\], "
         "got torch.uint8; divide 0..255 pixels by 255"),
    ],
)  # fmt: skip
def test_images_a_vae_cannot_use_are_refused(make, message):
    with pytest.raises(DataError, match=message):
        make()


def test_a_bare_int_for_hidden_dims_is_refused_before_training(no_training):
    with pytest.raises(UsageError) as error:
        fit_vae(images(), **{**SMALL, "hidden_dims": 16})
    assert str(error.value) == (
        "hidden_dims must be a tuple of positive integers, one width per hidden "
        "layer, e.g. (16,) or (400, 200); got 16"
    )


def test_a_saved_fit_of_a_users_own_images_is_refused_on_load_by_name(tmp_path):
    # The fit records the data's own name; a run directory cannot load such data
    # back, and says so instead of failing deep in loading.
    import ppl_models
    from ppl_models.errors import CheckpointError

    fit = fit_vae(images(name="mine"), **SMALL)
    fit.save(tmp_path / "run")
    with pytest.raises(CheckpointError, match="unknown dataset 'mine'"):
        ppl_models.load_fit(tmp_path / "run", device="cpu")


# --- 5: MNIST missing --------------------------------------------------------


def test_missing_mnist_is_one_short_line(capsys, tmp_path, monkeypatch):
    tried = []

    def no_network(url, dest, timeout):
        tried.append(url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(mnist, "_fetch", no_network)
    out = tmp_path / "run"
    line = refused(capsys, ["fit", "vae", "--dataset", "mnist", "--data-dir",
                            str(tmp_path), "--epochs", "1", "--device", "cpu",
                            "--out", str(out)])  # fmt: skip
    assert not out.exists()
    names = [name for pair in mnist.FILES.values() for name in pair]
    assert line == (
        f"ppl-models: error: MNIST file(s) missing from {tmp_path / 'mnist'}: "
        f"{', '.join(names)}; downloading failed: no network (Name or service not "
        "known); put them there (gzipped or not) or point --data-dir or "
        "PPL_MODELS_DATA at a folder whose mnist/ holds them, or use --dataset "
        "digits, which needs no download"
    )
    # One file's mirrors tried: the others would fail the same way.
    assert tried == [mirror + names[0] for mirror in mnist.MIRRORS]


def test_missing_test_files_alone_are_named_alone(tmp_path):
    (tmp_path / "mnist").mkdir()
    for name in mnist.FILES["train"]:
        (tmp_path / "mnist" / name).write_bytes(b"")
    with pytest.raises(DataError) as error:
        mnist.ensure_mnist("test", data_dir=tmp_path, download=False)
    message = str(error.value)
    assert message.startswith(
        f"MNIST file(s) missing from {tmp_path / 'mnist'}: "
        f"{', '.join(mnist.FILES['test'])}; put them there"
    )
    assert "downloading" not in message and "\n" not in message
