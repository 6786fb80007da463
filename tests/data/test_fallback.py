"""MNIST where it is, the digits with a warning where it is not."""

from __future__ import annotations

import pytest

from ppl_models.data import load_mnist_or_digits
from tests.conftest import mnist_root


def test_without_mnist_the_digits_stand_in_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="was not found.*digits stand in"):
        data = load_mnist_or_digits(data_dir=tmp_path)
    assert data.name == "digits"
    assert data.image_shape == (8, 8)


def test_unreadable_mnist_says_why(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        ext = "idx3" if "images" in name else "idx1"
        (folder / f"{name}-{ext}-ubyte").write_bytes(b"not an idx file")
    with pytest.warns(UserWarning, match="could not be read"):
        data = load_mnist_or_digits(data_dir=tmp_path)
    assert data.name == "digits"


def test_with_mnist_present_it_is_mnist(recwarn):
    root = mnist_root()
    if root is None:
        pytest.skip("MNIST not found in PPL_MODELS_DATA or the user's cache")
    data = load_mnist_or_digits(data_dir=root, limit_train=100, limit_test=50)
    assert data.name == "mnist"
    assert data.train.shape == (100, 784) and data.test.shape == (50, 784)
    assert not [w for w in recwarn if "digits" in str(w.message)]
