"""On-device image data: loading, binarization and batching (offline, on digits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppl_models.data import (
    BINARIZATIONS,
    ImageData,
    load_digits,
    load_images,
    mnist,
)
from ppl_models.data.batches import test_batches, train_batches
from ppl_models.data.idx import write_idx
from ppl_models.errors import DataError

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine"
)


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _indexed(num: int, binarize: str = "none") -> ImageData:
    """Data whose training row i is the constant i / num, so rows identify indices."""
    rows = (torch.arange(num, dtype=torch.float32) / num)[:, None].expand(num, 4)
    return ImageData(
        train=rows.contiguous(),
        train_labels=torch.arange(num),
        test=rows[:3].contiguous(),
        test_labels=torch.arange(3),
        image_shape=(2, 2),
        binarize=binarize,
        name="indexed",
    )


def _indices(batch: torch.Tensor, num: int) -> list[int]:
    return (batch[:, 0] * num).round().long().tolist()


def test_load_digits_splits():
    train_images, train_labels = load_digits("train")
    test_images, test_labels = load_digits("test")
    assert train_images.shape == (1500, 8, 8) and test_images.shape == (297, 8, 8)
    assert train_images.dtype == torch.float32 and train_labels.dtype == torch.int64
    assert train_images.min() >= 0 and train_images.max() == 1
    assert set(train_labels.tolist()) == set(range(10))
    again, _ = load_digits("test")
    assert torch.equal(again, test_images)
    with pytest.raises(DataError, match="unknown digits split"):
        load_digits("val")


def test_load_images_digits_none():
    data = load_images("digits", binarize="none")
    assert data.name == "digits" and data.binarize == "none"
    assert data.image_shape == (8, 8) and data.num_pixels == 64
    assert data.train.shape == (1500, 64) and data.test.shape == (297, 64)
    assert data.train_labels.shape == (1500,) and data.test_labels.shape == (297,)
    assert data.train.dtype == torch.float32 and data.test_labels.dtype == torch.int64
    assert data.device == torch.device("cpu")
    assert data.train.min() >= 0 and data.train.max() <= 1
    assert not _is_binary(data.train) and not _is_binary(data.test)
    assert torch.equal(data.test, load_digits("test")[0].reshape(297, 64))


def test_threshold_binarization():
    gray = load_images("digits", binarize="none")
    data = load_images("digits", binarize="threshold")
    assert _is_binary(data.train) and _is_binary(data.test)
    assert torch.equal(data.train, (gray.train > 0.5).float())
    assert torch.equal(data.test, (gray.test > 0.5).float())


def test_dynamic_binarization_of_test_set_is_fixed():
    first = load_images("digits", binarize="dynamic")
    second = load_images("digits", binarize="dynamic")
    assert not _is_binary(first.train)  # binarized per batch instead
    assert _is_binary(first.test)
    assert torch.equal(first.test, second.test)
    other_seed = load_images("digits", binarize="dynamic", test_seed=1)
    assert not torch.equal(first.test, other_seed.test)
    # A limited test set is a prefix of the full one, pixel for pixel.
    limited = load_images("digits", limit_train=7, limit_test=10)
    assert limited.train.shape == (7, 64) and limited.train_labels.shape == (7,)
    assert torch.equal(limited.test, first.test[:10])
    assert torch.equal(limited.test_labels, first.test_labels[:10])


def test_load_images_mnist_scales_to_unit_interval(tmp_path, monkeypatch):
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    images[:, 0, :3] = [0, 128, 255]
    for split in mnist.SPLITS:
        names = mnist.FILES[split]
        write_idx(tmp_path / "mnist" / names[0], images)
        write_idx(tmp_path / "mnist" / names[1], np.array([1, 2, 3], np.uint8))
        monkeypatch.setitem(mnist.COUNTS, split, 3)
    data = load_images("mnist", binarize="none", data_dir=tmp_path, download=False)
    assert data.image_shape == (28, 28) and data.train.shape == (3, 784)
    assert data.train[0, :3].tolist() == pytest.approx([0.0, 128 / 255, 1.0])
    assert data.test_labels.tolist() == [1, 2, 3]


@pytest.mark.parametrize("num,batch_size,sizes", [(10, 4, [4, 4, 2]), (8, 4, [4, 4])])
def test_train_batches_cover_every_index_once(num, batch_size, sizes):
    data = _indexed(num)
    seen = []
    for batch in train_batches(data, batch_size):
        assert batch.shape[1] == 4 and batch.dtype == torch.float32
        seen.append(_indices(batch, num))
    assert [len(s) for s in seen] == sizes
    assert sorted(i for s in seen for i in s) == list(range(num))


def test_train_batches_reshuffle_and_are_reproducible():
    data = _indexed(50)
    torch.manual_seed(3)
    epochs = [torch.cat(list(train_batches(data, 16))) for _ in range(2)]
    assert not torch.equal(epochs[0], epochs[1])  # a fresh order each epoch
    torch.manual_seed(3)
    assert torch.equal(torch.cat(list(train_batches(data, 16))), epochs[0])
    one, two = (torch.Generator().manual_seed(5) for _ in range(2))
    assert torch.equal(
        torch.cat(list(train_batches(data, 7, generator=one))),
        torch.cat(list(train_batches(data, 7, generator=two))),
    )


def test_dynamic_train_batches_redraw_pixels():
    data = load_images("digits", binarize="dynamic", limit_train=64)
    # One batch of everything, so the two epochs hold the same images in some order.
    epochs = [next(train_batches(data, 64)) for _ in range(2)]
    assert all(_is_binary(e) and e.shape == (64, 64) for e in epochs)
    sums = [e.sum(dim=1).sort().values for e in epochs]
    assert not torch.equal(sums[0], sums[1])
    # The draws follow the pixel intensities: the mean matches the grayscale mean.
    draws = torch.stack([e.mean() for e in train_batches(data, 8)]).mean()
    assert draws.item() == pytest.approx(data.train.mean().item(), abs=0.03)


@pytest.mark.parametrize("binarize", ["threshold", "none"])
def test_static_train_batches_are_rows_of_train(binarize):
    data = load_images("digits", binarize=binarize, limit_train=20)
    batch = torch.cat(list(train_batches(data, 6)))
    assert torch.equal(batch.sum(0), data.train.sum(0))


def test_test_batches_in_order():
    data = load_images("digits", binarize="threshold")
    chunks = list(test_batches(data, 100))
    assert [c.shape[0] for c in chunks] == [100, 100, 97]
    assert torch.equal(torch.cat(chunks), data.test)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, "8"])
def test_bad_batch_size(batch_size):
    data = _indexed(5)
    for batches in (train_batches, test_batches):
        with pytest.raises(DataError, match="batch_size must be a positive integer"):
            batches(data, batch_size)  # raised at the call, before iterating


def test_unknown_dataset_and_binarization():
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*mnist, digits"):
        load_images("cifar")
    with pytest.raises(DataError, match="unknown binarize 'otsu'.*dynamic"):
        load_images("digits", binarize="otsu")
    with pytest.raises(DataError, match="limit_train must be a positive integer"):
        load_images("digits", limit_train=0)
    assert BINARIZATIONS == ("dynamic", "threshold", "none")


def test_image_data_checks_shapes():
    data = _indexed(4)
    with pytest.raises(DataError, match=r"ImageData.train must have shape \(N, 9\)"):
        ImageData(**{**vars(data), "image_shape": (3, 3)})
    with pytest.raises(DataError, match="test_labels must have shape"):
        ImageData(**{**vars(data), "test_labels": torch.arange(2)})
    assert data.to("cpu") is data


def test_on_the_test_device(device):
    data = load_images("digits", binarize="dynamic", device=device, limit_train=100)
    assert data.train.device.type == device.type
    assert data.test_labels.device.type == device.type
    batches = list(train_batches(data, 32))
    assert [b.shape for b in batches] == [(32, 64)] * 3 + [(4, 64)]
    assert all(b.device.type == device.type and _is_binary(b) for b in batches)
    assert torch.equal(torch.cat(list(test_batches(data, 50))), data.test)


@pytest.mark.cuda
@requires_cuda
def test_on_gpu():
    data = load_images("digits", binarize="dynamic", device="cuda")
    cpu = load_images("digits", binarize="dynamic")
    assert data.train.is_cuda and data.test_labels.is_cuda
    assert torch.equal(data.test.cpu(), cpu.test)  # same test draw on every device
    batches = list(train_batches(data, 256))
    assert all(b.is_cuda and _is_binary(b) for b in batches)
    assert sum(b.shape[0] for b in batches) == 1500
    generator = torch.Generator(device=data.device).manual_seed(0)
    assert next(train_batches(data, 10, generator=generator)).is_cuda
    assert data.to("cpu").train.device.type == "cpu"
