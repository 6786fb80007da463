"""Reading and writing IDX files, the format MNIST is distributed in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order. Only
unsigned bytes (type code 0x08) occur in MNIST, so only those are supported.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from ppl_models.errors import DataError
from ppl_models.io.atomic import atomic_open

UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}


def _read_payload(path: Path) -> bytes:
    """The file's bytes, decompressed if it is gzip (told by content, not name)."""
    if not path.exists():
        raise DataError(f"IDX file {path} does not exist")
    if not path.is_file():
        raise DataError(f"IDX file {path} is not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        # gzip reports truncation as EOFError and bad data as BadGzipFile/zlib.error;
        # to the user all of them mean the same thing: the download is damaged.
        raise DataError(
            f"IDX file {path} is a corrupt or truncated gzip file ({error}); "
            "delete it and download it again"
        ) from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzip-compressed or raw.

    :returns: a writable uint8 array with the shape given in the header, e.g.
        (N, 28, 28) for MNIST images or (N,) for labels.
    :raises DataError: for a missing or unreadable file, a corrupt gzip stream, a bad
        header, a type other than unsigned byte, or a payload whose length does not
        match the header's dimensions.
    """
    path = Path(path)
    data = _read_payload(path)
    if len(data) < 4:
        raise DataError(
            f"IDX file {path} is too short for a header: expected at least 4 bytes, "
            f"found {len(data)}"
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"IDX file {path} has a bad magic number: expected the first two bytes "
            f"to be 0, found 0x{data[0]:02x} 0x{data[1]:02x} (not an IDX file?)"
        )
    type_code, ndim = data[2], data[3]
    if type_code != UBYTE:
        name = _TYPE_NAMES.get(type_code, "unknown")
        raise DataError(
            f"IDX file {path} has type code 0x{type_code:02x} ({name}): expected "
            f"0x{UBYTE:02x} (unsigned byte), the only type MNIST uses"
        )
    if ndim == 0:
        raise DataError(f"IDX file {path} declares 0 dimensions: expected at least 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"IDX file {path} is truncated inside its header: {ndim} dimensions need "
            f"{header_len} header bytes, found {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = math.prod(shape)
    actual = len(data) - header_len
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise DataError(
            f"IDX file {path} is {problem}: shape {shape} needs {expected} bytes of "
            f"data after the header, found {actual}"
        )
    # The copy makes the result writable, so torch.from_numpy does not warn.
    array = np.frombuffer(data, dtype=np.uint8, offset=header_len).copy()
    return array.reshape(shape)


def write_idx(
    path: str | Path, array: np.ndarray, compress: bool | None = None
) -> Path:
    """Write a uint8 array of any shape (at least 1-D) as an IDX file, atomically.

    :param compress: gzip the file; by default, when the name ends with ``.gz``.
    :returns: the path written. A reader never sees a half-written file: the data
        goes to a temporary file beside it, which replaces ``path`` when complete.
    :raises DataError: for an array that is not uint8 or has no dimensions.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise DataError(f"write_idx({path}): array must be uint8, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise DataError(
            f"write_idx({path}): array must have 1 to 255 dimensions, got {array.ndim}"
        )
    if compress is None:
        compress = path.name.endswith(".gz")
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + np.ascontiguousarray(array).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as out:
        if compress:
            # mtime=0 and a fixed name make the bytes reproducible.
            with gzip.GzipFile(
                filename=path.name, mode="wb", fileobj=out, mtime=0
            ) as gz:
                gz.write(payload)
        else:
            out.write(payload)
    return path


def expect_idx(
    array: np.ndarray,
    path: str | Path,
    *,
    kind: Literal["images", "labels"],
    count: int | None = None,
    image_shape: tuple[int, int] | None = (28, 28),
) -> np.ndarray:
    """Check an array from :func:`read_idx` against what an images/labels file holds.

    Images are (count, H, W), magic 2051 (0x0803); labels are (count,), magic 2049
    (0x0801). :func:`read_idx` already enforced the unsigned-byte type code, so the
    magic number is determined by the number of dimensions.

    :param count: the number of images or labels expected, or None for any.
    :param image_shape: (H, W) expected for images, or None for any.
    :returns: ``array`` unchanged.
    :raises DataError: naming ``path``, the expectation and what was found.
    """
    if kind not in ("images", "labels"):
        raise DataError(f"unknown IDX kind {kind!r}: expected 'images' or 'labels'")
    ndim = 3 if kind == "images" else 1
    if array.ndim != ndim:
        raise DataError(
            f"{path} should hold {kind}: expected magic {0x0800 + ndim} "
            f"({ndim}-dimensional unsigned bytes), found magic {0x0800 + array.ndim} "
            f"({array.ndim} dimensions, shape {array.shape})"
        )
    if kind == "images" and image_shape is not None:
        found = tuple(array.shape[1:])
        if found != tuple(image_shape):
            raise DataError(
                f"{path} should hold {tuple(image_shape)[0]}x{tuple(image_shape)[1]} "
                f"images, found {found[0]}x{found[1]}"
            )
    if count is not None and array.shape[0] != count:
        raise DataError(f"{path} should hold {count} {kind}, found {array.shape[0]}")
    return array
