"""MNIST loading: data root, download safety (with the network faked), file checks.

The real-data test runs only when PPL_MODELS_DATA points at a directory holding
the MNIST files; everything else uses tiny files the tests write themselves.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ppl_models.data import mnist
from ppl_models.data.idx import write_idx
from ppl_models.data.mnist import data_root, load_mnist
from ppl_models.errors import DataError
from tests.conftest import mnist_root

TRAIN_NAMES = mnist.FILES["train"]


def _tiny_split(count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    images = (np.arange(count * 28 * 28) % 256).astype(np.uint8).reshape(count, 28, 28)
    labels = (np.arange(count) % 10).astype(np.uint8)
    return images, labels


def _write_split(directory: Path, images, labels, split="train", gz=True) -> None:
    names = [name if gz else name.removesuffix(".gz") for name in mnist.FILES[split]]
    write_idx(directory / names[0], images)
    write_idx(directory / names[1], labels)


def _files(directory: Path) -> list[str]:
    """Every file under directory, temp files included."""
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PPL_MODELS_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data_root() == tmp_path / "home" / ".cache" / "ppl_models"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert data_root() == tmp_path / "home" / ".cache" / "ppl_models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "ppl_models"
    monkeypatch.setenv("PPL_MODELS_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root(str(tmp_path / "arg")) == tmp_path / "arg"


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError) as info:
        load_mnist("train", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "mnist") in message
    assert all(name in message for name in TRAIN_NAMES)
    assert "--dataset digits" in message and "PPL_MODELS_DATA" in message
    assert not (tmp_path / "mnist").exists()


def test_unknown_split(tmp_path):
    with pytest.raises(DataError, match="unknown MNIST split 'valid'"):
        load_mnist("valid", data_dir=tmp_path)


def test_download_with_wrong_md5_leaves_nothing(tmp_path, monkeypatch):
    urls = []

    def fetch(url, dest, timeout):
        urls.append(url)
        Path(dest).write_bytes(b"an error page, not MNIST")

    monkeypatch.setattr(mnist, "_fetch", fetch)
    with pytest.raises(DataError) as info:
        load_mnist("train", data_dir=tmp_path)
    assert "md5" in str(info.value) and "--dataset digits" in str(info.value)
    # Every mirror is tried for the first file; the second, which would fail the
    # same way, is not; and nothing is left behind.
    assert urls == [mirror + TRAIN_NAMES[0] for mirror in mnist.MIRRORS]
    assert _files(tmp_path) == []


def test_download_failing_midway_leaves_nothing(tmp_path, monkeypatch):
    def fetch(url, dest, timeout):
        assert timeout > 0
        Path(dest).write_bytes(b"\x1f\x8b partial")
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(mnist, "_fetch", fetch)
    with pytest.raises(DataError, match="ConnectionResetError") as info:
        load_mnist("test", data_dir=tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert _files(tmp_path) == []


def test_download_interrupted_by_bug_leaves_nothing(tmp_path, monkeypatch):
    def fetch(url, dest, timeout):
        Path(dest).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist, "_fetch", fetch)
    with pytest.raises(KeyboardInterrupt):
        load_mnist("train", data_dir=tmp_path)
    assert _files(tmp_path) == []


def test_download_success(tmp_path, monkeypatch):
    source = tmp_path / "source"
    images, labels = _tiny_split()
    _write_split(source, images, labels)
    for name in TRAIN_NAMES:
        digest = hashlib.md5((source / name).read_bytes()).hexdigest()
        monkeypatch.setitem(mnist.MD5, name, digest)
    monkeypatch.setitem(mnist.COUNTS, "train", len(images))
    urls = []

    def fetch(url, dest, timeout):
        urls.append(url)
        if url.startswith(mnist.MIRRORS[0]):
            raise TimeoutError("timed out")  # the first mirror is down
        Path(dest).write_bytes((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(mnist, "_fetch", fetch)
    root = tmp_path / "root"
    got_images, got_labels = load_mnist("train", data_dir=root)
    assert got_images.dtype == torch.uint8 and got_labels.dtype == torch.int64
    np.testing.assert_array_equal(got_images.numpy(), images)
    np.testing.assert_array_equal(got_labels.numpy(), labels)
    assert _files(root) == sorted(TRAIN_NAMES)
    # Present files are not fetched again.
    calls = len(urls)
    load_mnist("train", data_dir=root)
    assert len(urls) == calls


def test_real_fetch_reads_a_url(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"mnist bytes")
    dest = tmp_path / "dest"
    mnist._fetch(source.as_uri(), dest, timeout=5.0)
    assert dest.read_bytes() == b"mnist bytes"


def test_user_files_raw_and_not_md5_checked(tmp_path, monkeypatch):
    images, labels = _tiny_split(3)
    _write_split(tmp_path / "mnist", images, labels, split="test", gz=False)
    monkeypatch.setitem(mnist.COUNTS, "test", 3)
    got_images, got_labels = load_mnist("test", data_dir=tmp_path, download=False)
    assert got_images.shape == (3, 28, 28) and got_labels.tolist() == [0, 1, 2]


def test_wrong_image_shape(tmp_path):
    images = np.zeros((2, 27, 28), dtype=np.uint8)
    _write_split(tmp_path / "mnist", images, np.zeros(2, dtype=np.uint8))
    with pytest.raises(DataError, match="should hold 28x28 images, found 27x28"):
        load_mnist("train", data_dir=tmp_path, download=False)


def test_wrong_count(tmp_path):
    images, labels = _tiny_split()
    _write_split(tmp_path / "mnist", images, labels)
    with pytest.raises(DataError, match="should hold 60000 images, found 2"):
        load_mnist("train", data_dir=tmp_path, download=False)


@pytest.mark.parametrize("problem", ["count", "range"])
def test_bad_labels(tmp_path, monkeypatch, problem):
    images, labels = _tiny_split(4)
    labels = labels[:3] if problem == "count" else np.array([1, 2, 12, 3], np.uint8)
    _write_split(tmp_path / "mnist", images, labels)
    monkeypatch.setitem(mnist.COUNTS, "train", 4)
    expected = "should hold 4 labels, found 3" if problem == "count" else "found 12"
    with pytest.raises(DataError, match=expected):
        load_mnist("train", data_dir=tmp_path, download=False)


def test_truncated_download_in_place_is_reported(tmp_path):
    path = tmp_path / "mnist" / TRAIN_NAMES[0]
    path.parent.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)
    path.write_bytes(gzip.compress(noise.tobytes())[:1000])
    write_idx(tmp_path / "mnist" / TRAIN_NAMES[1], np.zeros(60000, np.uint8))
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        load_mnist("train", data_dir=tmp_path, download=False)


def _real_mnist_root() -> Path | None:
    root = mnist_root()
    if root is not None and (root / "mnist" / TRAIN_NAMES[0]).is_file():
        return root
    return None


@pytest.fixture(scope="module")
def real_mnist():
    root = _real_mnist_root()
    if root is None:
        pytest.skip(
            f"neither PPL_MODELS_DATA nor the user's cache holds mnist/{TRAIN_NAMES[0]}"
            "; set PPL_MODELS_DATA to run the real-MNIST checks"
        )
    return {
        split: load_mnist(split, data_dir=root, download=False)
        for split in ("train", "test")
    }


def test_real_mnist(real_mnist):
    train_images, train_labels = real_mnist["train"]
    test_images, test_labels = real_mnist["test"]
    assert train_images.shape == (60000, 28, 28) and train_labels.shape == (60000,)
    assert test_images.shape == (10000, 28, 28) and test_labels.shape == (10000,)
    assert train_images.dtype == torch.uint8 and train_labels.dtype == torch.int64
    assert train_labels.bincount()[:3].tolist() == [5923, 6742, 5958]
    mean = train_images.to(torch.float64).mean().item() / 255
    assert mean == pytest.approx(0.1307, abs=1e-3)
    assert test_labels.min() == 0 and test_labels.max() == 9


def test_mnist_available_needs_all_four_files(tmp_path):
    from ppl_models.data import mnist_available

    folder = tmp_path / "mnist"
    folder.mkdir()
    names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte",  # raw files count too
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    for name in names[:3]:
        (folder / name).write_bytes(b"")
    assert not mnist_available(tmp_path)
    (folder / names[3]).write_bytes(b"")
    assert mnist_available(tmp_path)


def test_the_tests_find_mnist_in_the_users_cache_without_ppl_models_data(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("PPL_MODELS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert mnist.cache_root() == data_root() == tmp_path / "ppl_models"
    assert mnist_root() is None
    folder = tmp_path / "ppl_models" / "mnist"
    folder.mkdir(parents=True)
    for name in [name for pair in mnist.FILES.values() for name in pair]:
        (folder / name).write_bytes(b"")
    assert mnist_root() == tmp_path / "ppl_models"
    # PPL_MODELS_DATA comes first where it holds MNIST, and is passed over where not.
    monkeypatch.setenv("PPL_MODELS_DATA", str(tmp_path / "elsewhere"))
    assert mnist_root() == tmp_path / "ppl_models"
