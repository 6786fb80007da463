"""Image datasets held on the training device, and the batches a VAE trains on.

The whole dataset is moved to the device once; batches are then cut from it by an
on-device permutation, so training does no host-to-device copies and needs no
DataLoader. With dynamic binarization every training image is drawn again as
Bernoulli pixels in every epoch, while the test set is binarized once, with a fixed
seed on the CPU, so test scores are comparable across runs and devices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ppl_models.data.digits import load_digits
from ppl_models.data.mnist import load_mnist
from ppl_models.device import resolve_device
from ppl_models.errors import DataError

BINARIZATIONS = ("dynamic", "threshold", "none")
DATASETS = ("mnist", "digits")
THRESHOLD = 0.5


@dataclass
class ImageData:
    """Flattened images with pixel values in [0, 1], all on one device.

    A user's own images may come as tensors or NumPy arrays of any floating dtype:
    they are stored as float32, the dtype the VAE computes in (pixels in [0, 1]
    lose nothing that matters). Integer pixels are refused, as 0..255 would be
    read as counts; divide them by 255 first.

    :ivar train: float32 (N, P), P = H * W; grayscale for ``"dynamic"`` (binarized
        per batch by :func:`train_batches`) and ``"none"``, {0, 1} for
        ``"threshold"``.
    :ivar train_labels: int64 (N,).
    :ivar test: float32 (M, P), binarized as asked ({0, 1}, drawn once with a fixed
        seed for ``"dynamic"``) or grayscale for ``"none"``.
    :ivar test_labels: int64 (M,).
    :ivar image_shape: (H, W).
    :ivar binarize: one of :data:`BINARIZATIONS`.
    :ivar name: the dataset's name, e.g. ``"mnist"``.
    """

    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor
    image_shape: tuple[int, int]
    binarize: str
    name: str

    def __post_init__(self) -> None:
        if self.binarize not in BINARIZATIONS:
            raise DataError(_unknown("binarize", self.binarize, BINARIZATIONS))
        self.image_shape = _check_image_shape(self.image_shape)
        pixels = self.num_pixels
        for part in ("train", "test"):
            images = _as_pixels(f"ImageData.{part}", getattr(self, part))
            labels = _as_tensor(
                f"ImageData.{part}_labels", getattr(self, f"{part}_labels")
            )
            setattr(self, part, images)
            setattr(self, f"{part}_labels", labels)
            if images.dim() != 2 or images.shape[1] != pixels:
                raise DataError(
                    f"ImageData.{part} must have shape (N, {pixels}) for "
                    f"{self.image_shape[0]}x{self.image_shape[1]} images, got "
                    f"{tuple(images.shape)}"
                )
            if labels.shape != (images.shape[0],):
                raise DataError(
                    f"ImageData.{part}_labels must have shape ({images.shape[0]},), "
                    f"got {tuple(labels.shape)}"
                )
            _check_pixels(f"ImageData.{part}", images, binary=self._binary(part))

    def _binary(self, part: str) -> bool:
        # Dynamic binarization draws the training pixels per batch, so only its test
        # set is already binary.
        if self.binarize == "threshold":
            return True
        return self.binarize == "dynamic" and part == "test"

    @property
    def num_pixels(self) -> int:
        """P = H * W, the length of a flattened image."""
        return self.image_shape[0] * self.image_shape[1]

    @property
    def device(self) -> torch.device:
        """The device the tensors are on."""
        return self.train.device

    def to(self, device: str | torch.device) -> ImageData:
        """A copy with every tensor on ``device`` (self if already there)."""
        device = resolve_device(device)
        if self.train.device == device and self.test.device == device:
            return self
        return dataclasses.replace(
            self,
            train=self.train.to(device),
            train_labels=self.train_labels.to(device),
            test=self.test.to(device),
            test_labels=self.test_labels.to(device),
        )


def _check_image_shape(shape: object) -> tuple[int, int]:
    """``shape`` as (H, W), two positive integers, else a :class:`DataError`."""
    ok = isinstance(shape, tuple | list) and len(shape) == 2
    ok = ok and all(
        isinstance(side, int | np.integer) and not isinstance(side, bool) and side > 0
        for side in shape
    )
    if not ok:
        raise DataError(
            f"ImageData.image_shape must be (height, width), two positive integers, "
            f"got {shape!r}"
        )
    return (int(shape[0]), int(shape[1]))


def _as_tensor(name: str, values: object) -> torch.Tensor:
    """A tensor or NumPy array as a tensor, else a :class:`DataError`."""
    if isinstance(values, np.ndarray):
        return torch.from_numpy(values)
    if not isinstance(values, torch.Tensor):
        raise DataError(
            f"{name} must be a torch tensor or NumPy array, got {type(values).__name__}"
        )
    return values


def _as_pixels(name: str, images: object) -> torch.Tensor:
    """Images as float32; other floating dtypes converted, integers refused."""
    images = _as_tensor(name, images)
    if not images.dtype.is_floating_point:
        hint = "; divide 0..255 pixels by 255" if images.dtype == torch.uint8 else ""
        raise DataError(
            f"{name} must hold floating-point pixels in [0, 1], got {images.dtype}"
            + hint
        )
    return images.to(torch.float32)


def _unknown(name: str, value: object, choices: tuple[str, ...]) -> str:
    return f"unknown {name} {value!r}: expected one of {', '.join(choices)}"


def _check_pixels(name: str, images: torch.Tensor, binary: bool) -> None:
    """Pixels must be floats in [0, 1] (exactly 0 or 1 if ``binary``), at least one
    image, no NaN: what the likelihoods' supports require.
    """
    if not images.dtype.is_floating_point:
        raise DataError(f"{name} must hold floating-point pixels, got {images.dtype}")
    if images.shape[0] == 0:
        raise DataError(f"{name} is empty: it has no images")
    if not torch.isfinite(images).all():
        raise DataError(f"{name} has NaN or infinite pixel values")
    if images.min() < 0 or images.max() > 1:
        raise DataError(
            f"{name} has pixel values outside [0, 1] (min {float(images.min()):.3g}, "
            f"max {float(images.max()):.3g})"
        )
    if binary and not ((images == 0) | (images == 1)).all():
        raise DataError(f"{name} must be binary (0 or 1) for this binarization")


def _check_limit(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{name} must be a positive integer or None, got {value!r}")


def _load_split(
    dataset: str, split: str, data_dir: str | Path | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) float32 images in [0, 1] and (N,) int64 labels, on the CPU."""
    if dataset == "mnist":
        images, labels = load_mnist(split, data_dir=data_dir, download=download)
        return images.to(torch.float32) / 255.0, labels
    return load_digits(split)


def load_images(
    dataset: Literal["mnist", "digits"],
    *,
    binarize: Literal["dynamic", "threshold", "none"] = "dynamic",
    data_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
    test_seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> ImageData:
    """Load an image dataset, binarize it as asked and move it to ``device`` once.

    :param dataset: ``"mnist"`` (28x28, downloaded if missing; see
        :func:`~ppl_models.data.mnist.load_mnist`) or ``"digits"`` (8x8, bundled
        with scikit-learn).
    :param binarize: ``"dynamic"`` (train pixels drawn as Bernoulli per batch, test
        drawn once with ``test_seed``), ``"threshold"`` (pixel > 0.5) or ``"none"``.
    :param data_dir: the data root for MNIST (see
        :func:`~ppl_models.data.mnist.data_root`); unused for digits.
    :param device: where all the tensors are put, once (``"auto"`` allowed).
    :param download: let MNIST download missing files.
    :param test_seed: seed of the CPU generator for the dynamic test draw.
    :param limit_train: keep only the first this many training images.
    :param limit_test: keep only the first this many test images; they are the
        same images, binarized the same way, as in the full test set.
    :returns: :class:`ImageData` with train (N, P) and test (M, P) float32.
    :raises DataError: for an unknown dataset or binarization, a bad limit, or
        data that cannot be loaded.
    """
    if dataset not in DATASETS:
        raise DataError(_unknown("dataset", dataset, DATASETS))
    if binarize not in BINARIZATIONS:
        raise DataError(_unknown("binarize", binarize, BINARIZATIONS))
    _check_limit("limit_train", limit_train)
    _check_limit("limit_test", limit_test)
    if isinstance(test_seed, bool) or not isinstance(test_seed, int):
        raise DataError(f"test_seed must be an integer, got {test_seed!r}")
    device = resolve_device(device)

    train, train_labels = _load_split(dataset, "train", data_dir, download)
    test, test_labels = _load_split(dataset, "test", data_dir, download)
    image_shape = (int(train.shape[1]), int(train.shape[2]))
    train = train[:limit_train].reshape(-1, image_shape[0] * image_shape[1])
    train_labels = train_labels[:limit_train]
    test = test.reshape(-1, image_shape[0] * image_shape[1])

    if binarize == "threshold":
        train = (train > THRESHOLD).to(torch.float32)
        test = (test > THRESHOLD).to(torch.float32)
    elif binarize == "dynamic":
        # Drawn on the CPU with its own generator, and before limit_test, so the
        # same images get the same pixels whatever the device or the limit.
        generator = torch.Generator().manual_seed(test_seed)
        test = torch.bernoulli(test, generator=generator)
    test, test_labels = test[:limit_test], test_labels[:limit_test]

    data = ImageData(
        train=train.contiguous(),
        train_labels=train_labels.contiguous(),
        test=test.contiguous(),
        test_labels=test_labels.contiguous(),
        image_shape=image_shape,
        binarize=binarize,
        name=dataset,
    )
    return data.to(device)
