"""The one place that decides which device the zoo computes on."""

from __future__ import annotations

import re

import torch

from ppl_models.errors import DeviceError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn a device request into a :class:`torch.device` that exists here.

    :param spec: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``
        or ``"cuda:N"``, or a ``torch.device``.
    :raises DeviceError: for an unknown name, or CUDA asked for where there is none.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if not _DEVICE_PATTERN.match(text):
        raise DeviceError(
            f"unknown device {spec!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} requested but CUDA is not available on this machine "
            "(no GPU, or a CPU-only build of PyTorch); use --device cpu or auto"
        )
    device = torch.device(text)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(
            f"device {spec!r} requested but this machine has {count} CUDA device(s)"
        )
    return device
