"""IDX reading and writing, on small files each test writes itself."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from ppl_models.data.idx import expect_idx, read_idx, write_idx
from ppl_models.errors import DataError


def _images(count: int = 3, height: int = 4, width: int = 5) -> np.ndarray:
    values = np.arange(count * height * width) % 256
    return values.astype(np.uint8).reshape(count, height, width)


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim])
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.mark.parametrize("name", ["a-idx3-ubyte.gz", "a-idx3-ubyte"])
def test_round_trip(tmp_path, name):
    array = _images()
    path = write_idx(tmp_path / name, array)
    is_gzip = path.read_bytes()[:2] == b"\x1f\x8b"
    assert is_gzip == name.endswith(".gz")
    result = read_idx(path)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, array)
    assert result.flags.writeable
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left


def test_round_trip_labels_and_gzip_detected_by_content(tmp_path):
    labels = np.array([0, 9, 3, 3], dtype=np.uint8)
    # A gzipped file without .gz in its name is still read as gzip.
    path = write_idx(tmp_path / "labels", labels, compress=True)
    np.testing.assert_array_equal(read_idx(path), labels)
    assert read_idx(write_idx(tmp_path / "x.gz", labels, compress=False)).shape == (4,)


def test_write_is_reproducible_and_replaces(tmp_path):
    path = tmp_path / "a.gz"
    first = write_idx(path, _images()).read_bytes()
    assert write_idx(path, _images()).read_bytes() == first
    write_idx(path, _images(count=1))
    assert read_idx(path).shape == (1, 4, 5)


def test_write_rejects_non_uint8(tmp_path):
    with pytest.raises(DataError, match="uint8"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.float32))
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")


def test_truncated_raw_file(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(_idx_bytes(_images())[:-7])
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert "truncated" in message and str(path) in message
    assert "needs 60 bytes" in message and "found 53" in message


def test_over_long_raw_file(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(_idx_bytes(_images()) + b"\0\0")
    with pytest.raises(DataError, match="needs 60 bytes .* found 62"):
        read_idx(path)


def test_truncated_gzip_file(tmp_path):
    path = tmp_path / "images.gz"
    data = gzip.compress(_idx_bytes(_images(count=50)))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_stream(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(b"\x1f\x8b" + b"not really gzip" * 4)
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_wrong_type_code(tmp_path):
    path = tmp_path / "floats"
    path.write_bytes(_idx_bytes(_images(), type_code=0x0D))
    with pytest.raises(DataError, match=r"type code 0x0d \(float\).*unsigned byte"):
        read_idx(path)


def test_bad_magic_bytes(tmp_path):
    path = tmp_path / "png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(path)


@pytest.mark.parametrize("size", [0, 3])
def test_header_too_short(tmp_path, size):
    path = tmp_path / "short"
    path.write_bytes(bytes(size))
    with pytest.raises(DataError, match=f"at least 4 bytes, found {size}"):
        read_idx(path)


def test_truncated_inside_dimensions(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2]))
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(path)


def test_expect_images_rejects_labels_file(tmp_path):
    labels = np.zeros(5, dtype=np.uint8)
    with pytest.raises(DataError, match="expected magic 2051.*found magic 2049"):
        expect_idx(labels, tmp_path / "x", kind="images")


def test_expect_labels_rejects_images_file(tmp_path):
    with pytest.raises(DataError, match="expected magic 2049.*found magic 2051"):
        expect_idx(_images(), tmp_path / "x", kind="labels")


def test_expect_count_and_shape(tmp_path):
    images = _images(count=3, height=27, width=28)
    assert expect_idx(images, "f", kind="images", count=3, image_shape=None) is images
    with pytest.raises(DataError, match="should hold 28x28 images, found 27x28"):
        expect_idx(images, "f", kind="images", count=3)
    with pytest.raises(DataError, match="should hold 4 images, found 3"):
        expect_idx(images, "f", kind="images", count=4, image_shape=(27, 28))
