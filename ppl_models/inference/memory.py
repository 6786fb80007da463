"""Recognising an out-of-memory error, on whatever device it happened.

CUDA raises :class:`torch.OutOfMemoryError`, but the CPU's allocator raises a plain
``RuntimeError`` ("DefaultCPUAllocator: can't allocate memory: you tried to allocate
N bytes", or "not enough memory" on Windows), as do Apple's MPS backend and a C++
``std::bad_alloc`` that torch passes on; Python itself raises ``MemoryError``.
Whoever catches an out-of-memory error to recover (smaller chunks) or to give advice
(a smaller batch) asks :func:`is_out_of_memory` rather than catching one class.
"""

from __future__ import annotations

import torch

from ppl_models.errors import TrainingError, UsageError

#: what torch's allocators say when they cannot allocate (matched case-insensitively)
OUT_OF_MEMORY_MESSAGES = (
    "defaultcpuallocator: can't allocate memory",
    "defaultcpuallocator: not enough memory",
    "can't allocate memory: you tried to allocate",
    "cuda out of memory",
    "cuda error: out of memory",
    "mps backend out of memory",
    "xpu out of memory",
    "hip out of memory",
    "std::bad_alloc",
)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says that a device (CPU or accelerator) ran out of memory.

    True for :class:`torch.OutOfMemoryError`, ``MemoryError`` and a
    ``RuntimeError`` whose message is one of torch's allocation failures; False for
    the zoo's own errors, whose messages may mention memory without being one.
    """
    if isinstance(error, TrainingError | UsageError):
        return False
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    if not isinstance(error, RuntimeError):
        return False
    message = str(error).lower()
    return any(known in message for known in OUT_OF_MEMORY_MESSAGES)
