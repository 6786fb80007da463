"""MNIST from a local directory, downloaded from a public mirror when missing.

The four files live in ``<data root>/mnist/`` under their original names, gzipped or
not. Downloads are verified by md5 before they are moved into place; files a user
put there themselves are not (their gzip wrappers may differ from the mirrors'),
but their IDX headers, shapes and labels are checked on every load.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ppl_models.data.idx import expect_idx, read_idx
from ppl_models.errors import DataError
from ppl_models.io.atomic import set_usual_mode

ENV_VAR = "PPL_MODELS_DATA"
SPLITS = ("train", "test")
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
COUNTS = {"train": 60000, "test": 10000}
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
# md5 of the gzip files as the mirrors serve them.
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TIMEOUT_S = 60.0


def data_root(data_dir: str | Path | None = None) -> Path:
    """The directory datasets live under (MNIST in its ``mnist/`` subfolder).

    In order of precedence: ``data_dir``; the environment variable
    ``PPL_MODELS_DATA``; ``$XDG_CACHE_HOME/ppl_models``; ``~/.cache/ppl_models``.
    The directory need not exist yet.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return cache_root()


def cache_root() -> Path:
    """The user's cache for datasets: ``$XDG_CACHE_HOME/ppl_models``, or
    ``~/.cache/ppl_models``; where the command line downloads MNIST by default.
    """
    cache = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if cache and Path(cache).is_absolute():
        return Path(cache) / "ppl_models"
    return Path.home() / ".cache" / "ppl_models"


def _find(directory: Path, name: str) -> Path | None:
    """The file ``name`` in ``directory``, gzipped or raw, or None if neither."""
    for candidate in (directory / name, directory / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def mnist_available(data_dir: str | Path | None = None) -> bool:
    """Whether all four MNIST files (gzipped or raw) are in ``mnist/`` under
    :func:`data_root`; looks only, neither downloads nor reads them.
    """
    directory = data_root(data_dir) / "mnist"
    names = [name for pair in FILES.values() for name in pair]
    return all(_find(directory, name) is not None for name in names)


def _fetch(url: str, dest: Path, timeout: float) -> None:
    """Download ``url`` into the existing file ``dest`` (tests replace this)."""
    request = urllib.request.Request(url, headers={"User-Agent": "ppl_models"})
    with (
        urllib.request.urlopen(request, timeout=timeout) as response,
        open(dest, "wb") as out,
    ):
        shutil.copyfileobj(response, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str, directory: Path, timeout: float = TIMEOUT_S) -> list[str]:
    """Try each mirror for ``name`` until one gives a file with the right md5.

    The file is fetched into a temporary file in ``directory`` and moved into place
    only once verified, so an interrupted or corrupted download never leaves a file
    that a later load would trust.

    :returns: an empty list on success, else why each mirror failed, in a few words
        (see :func:`_why`).
    """
    failures = []
    for mirror in MIRRORS:
        url = mirror + name
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                dir=directory, prefix=f".{name}.", suffix=".part"
            )
        except OSError as error:
            raise DataError(
                f"cannot download {name} into {directory}: {error}; choose a "
                f"writable data directory with {ENV_VAR} or --data-dir"
            ) from None
        set_usual_mode(fd)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch(url, tmp, timeout)
            if _md5(tmp) != MD5[name]:
                failures.append("a mirror served a file with the wrong md5")
                continue
            os.replace(tmp, directory / name)
            return []
        except (OSError, http.client.HTTPException) as error:
            # URLError, HTTPError and timeouts are all OSErrors; IncompleteRead is not.
            failures.append(_why(error, timeout))
        finally:
            tmp.unlink(missing_ok=True)
    return failures


def _why(error: BaseException, timeout: float) -> str:
    """A download error in a few words: the same words for the same cause, so one
    cause met at every mirror is said once."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, socket.gaierror):
        return f"no network ({reason.strerror})"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer in {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return f"{type(reason).__name__}: {reason.strerror}"
    return f"{type(reason).__name__}: {reason}"


def _missing_message(directory: Path, missing: list[str], failures: list[str]) -> str:
    """One line: the missing files, why downloading them failed, the two fixes."""
    message = f"MNIST file(s) missing from {directory}: {', '.join(missing)}"
    if failures:
        message += f"; downloading failed: {', '.join(dict.fromkeys(failures))}"
    return message + (
        f"; put them there (gzipped or not) or point --data-dir or {ENV_VAR} at a "
        "folder whose mnist/ holds them, or use --dataset digits, which needs no "
        "download"
    )


def ensure_mnist(
    split: Literal["train", "test"],
    data_dir: str | Path | None = None,
    download: bool = True,
) -> tuple[Path, Path]:
    """Find (downloading if allowed and needed) the images and labels files of a split.

    :returns: the paths of the images file and the labels file.
    :raises DataError: if a file is missing and cannot be downloaded.
    """
    if split not in SPLITS:
        raise DataError(f"unknown MNIST split {split!r}: expected 'train' or 'test'")
    directory = data_root(data_dir) / "mnist"
    names = FILES[split]
    missing = [name for name in names if _find(directory, name) is None]
    failures: list[str] = []
    if missing and download:
        for name in missing:
            failures.extend(_download(name, directory))
            if _find(directory, name) is None:
                break  # the next file would fail the same way; say so once
    if any(_find(directory, name) is None for name in names):
        # All four, so one message names every file a user must put in place.
        everything = [name for pair in FILES.values() for name in pair]
        still_missing = [n for n in everything if _find(directory, n) is None]
        raise DataError(_missing_message(directory, still_missing, failures))
    images, labels = (_find(directory, name) for name in names)
    return images, labels


def load_mnist(
    split: Literal["train", "test"],
    data_dir: str | Path | None = None,
    download: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of MNIST on the CPU.

    :param split: ``"train"`` (60000 images) or ``"test"`` (10000 images).
    :param data_dir: the data root (MNIST is read from its ``mnist/`` folder);
        see :func:`data_root` for the default.
    :param download: fetch missing files from a public mirror.
    :returns: images, uint8 (N, 28, 28) with values 0..255, and labels, int64 (N,)
        with values 0..9.
    :raises DataError: for missing files that cannot be downloaded, or files with
        the wrong format, shape, count or label values.
    """
    images_path, labels_path = ensure_mnist(split, data_dir, download)
    count = COUNTS[split]
    images = expect_idx(
        read_idx(images_path),
        images_path,
        kind="images",
        count=count,
        image_shape=IMAGE_SHAPE,
    )
    labels = expect_idx(read_idx(labels_path), labels_path, kind="labels", count=count)
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(
            f"{labels_path} should hold labels 0..{NUM_CLASSES - 1}, found "
            f"{int(labels[bad])} at index {bad}"
        )
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
