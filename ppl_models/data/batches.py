"""Batches of image data for training and evaluation: one epoch's random order in
one process, or a rank's share of it when several train together."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ppl_models.data.images import ImageData
from ppl_models.errors import DataError


def train_batches(
    data: ImageData,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """One epoch of training batches in a fresh random order, on ``data``'s device.

    Each call draws a new permutation with :func:`torch.randperm` on the data's
    device (from the global RNG unless ``generator`` is given, so
    ``pyro.set_rng_seed`` makes epochs reproducible). With dynamic binarization each
    batch is a fresh Bernoulli draw of its images.

    :param batch_size: B; the last batch has N mod B images if that is not 0.
    :param generator: a generator on the same device as the data.
    :returns: an iterator of float32 (B, P) tensors covering every training image
        exactly once.
    :raises DataError: for a batch size that is not a positive integer.
    """
    _check_batch_size(batch_size)
    return _train_batches(data, batch_size, generator)


def _train_batches(
    data: ImageData, batch_size: int, generator: torch.Generator | None
) -> Iterator[torch.Tensor]:
    # Kept apart from train_batches so a bad batch_size fails at the call, not at
    # the first next().
    order = torch.randperm(
        data.train.shape[0], device=data.train.device, generator=generator
    )
    for indices in order.split(batch_size):
        batch = data.train[indices]
        if data.binarize == "dynamic":
            batch = torch.bernoulli(batch, generator=generator)
        yield batch


def shard_indices(
    num_images: int, rank: int, size: int, order: torch.Tensor
) -> torch.Tensor:
    """Rank ``rank``'s share of an epoch's ``order`` (a permutation of
    ``num_images``), as ``DistributedSampler`` cuts it: the order is padded from
    its start to a multiple of ``size``, and rank r takes every size-th image from
    r. The shares are disjoint but for the padding, cover the epoch, and are of
    one length, so every rank takes the same number of steps.

    :returns: (ceil(num_images / size),) indices on ``order``'s device.
    """
    padded = -(-num_images // size) * size
    if padded > num_images:
        order = torch.cat([order, order[: padded - num_images]])
    return order[rank::size]


def shard_batches(
    data: ImageData, batch_size: int, rank: int, size: int, seed: int
) -> Iterator[torch.Tensor]:
    """One epoch of rank ``rank``'s training batches, of ``size`` ranks.

    The epoch's order is drawn from ``seed`` alone, alike on every rank; the
    binarization draws come from the global generator, which each rank seeds with
    a stream of its own.

    :returns: ceil(ceil(N / size) / B) float32 (B, P) batches, the last smaller.
    """
    _check_batch_size(batch_size)
    device = data.train.device
    generator = torch.Generator(device=device).manual_seed(seed)
    order = torch.randperm(data.train.shape[0], device=device, generator=generator)
    mine = shard_indices(data.train.shape[0], rank, size, order)
    for indices in mine.split(batch_size):
        batch = data.train[indices]
        if data.binarize == "dynamic":
            batch = torch.bernoulli(batch)
        yield batch


def test_batches(data: ImageData, batch_size: int) -> Iterator[torch.Tensor]:
    """The test images in their stored order, as float32 (B, P) chunks.

    The last chunk has M mod B images if that is not 0. No randomness: the test set
    was binarized once by :func:`load_images`.

    :raises DataError: for a batch size that is not a positive integer.
    """
    _check_batch_size(batch_size)
    return iter(data.test.split(batch_size))


# pytest would otherwise collect this function as a test when a test module
# imports it by name.
test_batches.__test__ = False  # type: ignore[attr-defined]


def _check_batch_size(batch_size: int) -> None:
    ok = isinstance(batch_size, int) and not isinstance(batch_size, bool)
    if not ok or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
