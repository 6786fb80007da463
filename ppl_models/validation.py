"""Checks on user input at the boundary, each raising an error that names the input."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ppl_models.errors import DataError, UsageError

#: the largest count a setting may have: torch indexes with 64-bit integers, and no
#: size, step count or sample count of this zoo comes near 2**31 in practice
MAX_INT = 2**31 - 1


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` if it is an integer from 1 to :data:`MAX_INT`, else raise a
    :class:`UsageError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")
    if value > MAX_INT:
        raise UsageError(f"{name} must be at most {MAX_INT}, got {value!r}")
    return value


def check_int_range(name: str, value: int, low: int, high: int) -> int:
    """Return ``value`` if it is an integer from ``low`` to ``high``, else raise a
    :class:`UsageError` saying so."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise UsageError(
            f"{name} must be an integer from {low} to {high}, got {value!r}"
        )
    return value


def check_float_at_least(name: str, value: float, low: float) -> float:
    """Return ``value`` as a float if it is finite and >= ``low``, else raise."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (low <= float(value) < math.inf):
        raise UsageError(f"{name} must be a finite number >= {low:g}, got {value!r}")
    return float(value)


def check_positive_float(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (0 < float(value) < math.inf):
        raise UsageError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


#: seeds that every generator ``pyro.set_rng_seed`` seeds accepts (NumPy's is 32-bit)
MAX_SEED = 2**32 - 1


def check_seed(value: int) -> int:
    """Return ``value`` if it is an integer seed in [0, 2**32 - 1], else raise a
    :class:`UsageError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_SEED
    ):
        raise UsageError(f"seed must be an integer from 0 to {MAX_SEED}, got {value!r}")
    return value


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`UsageError`."""
    if value not in choices:
        raise UsageError(
            f"unknown {name} {value!r}: expected one of {', '.join(choices)}"
        )
    return value


def as_data_matrix(
    data: torch.Tensor | np.ndarray | Sequence,
    name: str = "data",
    *,
    num_columns: int | None = None,
) -> torch.Tensor:
    """Turn user data into a finite float32 matrix, or say what is wrong with it.

    :param data: a tensor, array or nested sequence of shape (N, D).
    :param num_columns: D, if the caller already knows it.
    :returns: a float32 tensor (N, D) on the CPU.
    :raises DataError: for a non-numeric array, the wrong rank or width, no rows or
        no columns, or NaN/Inf entries (with the index of the first one).
    """
    if isinstance(data, torch.Tensor):
        array = data.detach().cpu()
    else:
        try:
            array = torch.as_tensor(np.asarray(data))
        except (TypeError, ValueError) as error:
            raise DataError(f"{name} is not a numeric array: {error}") from None
    if array.dtype == torch.bool or array.dtype.is_complex:
        raise DataError(f"{name} must be real numbers, got dtype {array.dtype}")
    if array.dim() != 2:
        raise DataError(
            f"{name} must have shape (N, data_dim), got {tuple(array.shape)}"
        )
    if array.shape[0] == 0:
        raise DataError(f"{name} is empty: it has no rows")
    if array.shape[1] == 0:
        raise DataError(f"{name} has no columns: shape {tuple(array.shape)}")
    if num_columns is not None and array.shape[1] != num_columns:
        raise DataError(
            f"{name} must have {num_columns} columns (data_dim), got {array.shape[1]}"
        )
    array = array.to(torch.float32)
    bad = ~torch.isfinite(array)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise DataError(
            f"{name} has {int(bad.sum())} NaN or infinite value(s), the first at "
            f"row {row}, column {col}"
        )
    return array
