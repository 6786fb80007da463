"""Timing and memory measurement that respects an asynchronous device."""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished the work queued so far."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_blocks(
    steps: dict[str, Callable[[torch.Tensor], object]],
    batches: Callable[[], Iterator[torch.Tensor]],
    device: torch.device,
    block: int,
    repeats: int,
    warmup: int,
) -> dict[str, float]:
    """Median seconds per step of each of ``steps``.

    Every step function runs ``warmup`` steps, then ``repeats`` rounds of a block of
    ``block`` steps each; within a round the functions take turns, so a machine
    that slows down for a while slows them all alike. The device is synchronised at
    block boundaries only, so queued work overlaps as it does in training.

    :param batches: returns a fresh iterator of device batches (B, P).
    """
    stream = _endless(batches)
    for step in steps.values():
        for _ in range(warmup):
            step(next(stream))
    per_step: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            xs = [next(stream) for _ in range(block)]
            synchronize(device)
            start = time.perf_counter()
            for x in xs:
                step(x)
            synchronize(device)
            per_step[name].append((time.perf_counter() - start) / block)
    return {name: statistics.median(times) for name, times in per_step.items()}


def _endless(batches: Callable[[], Iterator[torch.Tensor]]) -> Iterator[torch.Tensor]:
    while True:
        yield from batches()


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Peak memory inside the block, in MiB, under ``["peak_mib"]`` on exit.

    On a GPU: the most memory PyTorch's allocator held for tensors. On the CPU (Linux
    only): the process's peak resident set, reset at the start of the block; the
    data set and the libraries count too.
    """
    result: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _reset_peak_rss()
    try:
        yield result
    finally:
        if device.type == "cuda":
            result["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            result["peak_mib"] = _peak_rss_mib()


def _reset_peak_rss() -> None:
    # Not Linux, or not allowed: the peak then counts from the process's start.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {torch.get_num_threads()} threads"
