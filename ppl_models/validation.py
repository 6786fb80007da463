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
        no columns, NaN/Inf entries or values beyond float32's range (with the index
        of the first one).
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
    _check_finite(name, array)
    # Checked before the cast: a finite float64 beyond float32's range would
    # otherwise become inf and be reported as "infinite".
    if array.dtype.is_floating_point and array.dtype.itemsize > 4:
        too_big = array.abs() > FLOAT32_MAX
        if too_big.any():
            row, col = (int(i) for i in too_big.nonzero()[0])
            raise DataError(
                f"{name} has {int(too_big.sum())} value(s) beyond float32's range "
                f"(±{FLOAT32_MAX:.3g}), the first {float(array[row, col]):.3g} at "
                f"row {row}, column {col}: rescale the data"
            )
    return array.to(torch.float32)


#: the largest finite float32, the dtype the models compute in
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _check_finite(name: str, array: torch.Tensor) -> None:
    """Raise a :class:`DataError` naming the first NaN or infinite entry."""
    bad = ~torch.isfinite(array)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise DataError(
            f"{name} has {int(bad.sum())} NaN or infinite value(s), the first at "
            f"row {row}, column {col}"
        )


def check_varies(data: torch.Tensor | np.ndarray, name: str = "data") -> None:
    """Refuse a data matrix a covariance cannot be estimated from.

    :param data: (N, D), finite.
    :raises DataError: for fewer than two rows, or rows that are all the same (no
        variance in any column).
    """
    array = torch.as_tensor(data)
    n = array.shape[0]
    if n < 2:
        raise DataError(
            f"{name} has {n} row{'' if n == 1 else 's'}: at least 2 are needed, as "
            "the data's covariance needs two points"
        )
    if bool((array == array[:1]).all()):
        raise DataError(
            f"{name} has no variance: all {n} rows are the same ({_row(array[0])}); "
            "the model needs data that vary"
        )


#: the largest total variance (summed over columns) data may have for a float32
#: model: its fit and checks square the covariance's entries (the Frobenius norms
#: of the criticism), so the variance itself must be below sqrt(float32 max), about
#: 1.8e19; 16 times below leaves room for replicated data that spread more. PPCA
#: measured: every fit and check finite at 1e19, the first non-finite at 1e20.
MAX_TOTAL_VARIANCE = math.sqrt(FLOAT32_MAX) / 16


def check_float32_scale(data: torch.Tensor | np.ndarray, name: str = "data") -> None:
    """Refuse data whose spread float32 arithmetic cannot square.

    :param data: (N, D), finite.
    :raises DataError: if the total variance about the column means is above
        :data:`MAX_TOTAL_VARIANCE`, saying by how much to rescale.
    """
    x = torch.as_tensor(data).to(torch.float64)
    spread = float((x - x.mean(dim=0, keepdim=True)).abs().max())
    if spread == 0:
        return
    # Scaled first, so the squares cannot overflow even float64.
    total = float(((x - x.mean(dim=0, keepdim=True)) / spread).square().sum())
    variance = total / x.shape[0] * spread**2
    if not variance <= MAX_TOTAL_VARIANCE:
        raise DataError(
            f"{name} spread too wide for float32: its total variance {variance:.3g} "
            f"is above {MAX_TOTAL_VARIANCE:.3g}, beyond which the fit's squares "
            f"overflow; rescale it, e.g. divide it by "
            f"{divisor(variance / MAX_TOTAL_VARIANCE)} or more"
        )


def divisor(variance_ratio: float) -> str:
    """What to divide data by to bring their variance down by ``variance_ratio``
    (> 1): its square root, rounded up to two significant digits, so that dividing
    by the number shown is always enough."""
    root = math.sqrt(variance_ratio)
    unit = 10.0 ** (math.floor(math.log10(root)) - 1)
    return f"{math.ceil(root / unit * (1 - 1e-12)) * unit:.2g}"


def _row(row: torch.Tensor, shown: int = 4) -> str:
    values = ", ".join(f"{float(v):.6g}" for v in row[:shown])
    return values + (", ..." if row.shape[0] > shown else "")


def top_variance(data: torch.Tensor | np.ndarray, *, centre: bool = True) -> float:
    """The data's variance along its principal axis: the largest eigenvalue of its
    covariance about the column means (``centre``) or about zero, in float64 so
    that data too large for float32 still get a number.

    :param data: (N, D), finite.
    """
    x = torch.as_tensor(data).to(torch.float64)
    if centre:
        x = x - x.mean(dim=0, keepdim=True)
    # Scaled first, so the products cannot overflow even float64.
    scale = float(x.abs().max())
    if scale == 0:
        return 0.0
    x = x / scale
    moment = x.T @ x / x.shape[0]
    return float(torch.linalg.eigvalsh(moment)[-1]) * scale**2
