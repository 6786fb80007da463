"""Datasets for the zoo's models: MNIST and scikit-learn's digits as image data."""

from ppl_models.data.batches import test_batches, train_batches
from ppl_models.data.digits import load_digits
from ppl_models.data.fallback import load_mnist_or_digits
from ppl_models.data.idx import read_idx, write_idx
from ppl_models.data.images import (
    BINARIZATIONS,
    ImageData,
    load_images,
)
from ppl_models.data.mnist import data_root, load_mnist, mnist_available

__all__ = [
    "BINARIZATIONS",
    "ImageData",
    "data_root",
    "load_digits",
    "load_images",
    "load_mnist",
    "load_mnist_or_digits",
    "mnist_available",
    "read_idx",
    "test_batches",
    "train_batches",
    "write_idx",
]
