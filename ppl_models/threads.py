"""How many threads torch computes with on the CPU, for a command of ``ppl-models``.

Torch's default is one thread per core. The zoo's small models (the 8x8 digits VAE,
PPCA) do too little per step to share among threads: the threads wait on each other,
and where other processes hold the cores they wait far longer (3 epochs of the
digits VAE took 7.5 s with two threads and 0.56 s with one on a busy 2-core machine).
So a command picks the count from a fit's work per step and the cores it may use,
unless the user chose:
``--threads N``, or ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` in the environment.

Only the command line sets the count; importing the zoo leaves torch's as it is.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from ppl_models.errors import UsageError
from ppl_models.validation import check_positive_int

#: the environment variables that choose torch's thread count when it starts
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: multiply-adds per training step that keep one thread busy enough to be worth
#: another: below it a fit runs on one thread. A step of the demo's 8x8 digits VAE
#: is about 3 million (20 million with fit's defaults), PPCA's well under one; an
#: MLP VAE of MNIST with fit's defaults about 260 million, which gains from more.
WORK_PER_THREAD = 50e6

#: pixels per image of the image data sets a config can name
_PIXELS = {"digits": 8 * 8, "mnist": 28 * 28}

# The count the command line chose (--threads), for the fits the command runs.
_chosen: ContextVar[int | None] = ContextVar("ppl_models_threads", default=None)


def available_cores() -> int:
    """The cores this process may run on (its affinity, where the system says),
    shared with the other processes ``torchrun`` started on this machine
    (``LOCAL_WORLD_SIZE``), at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def threads_for_work(work: float, cores: int) -> int:
    """Threads for a step of ``work`` multiply-adds: one per ``WORK_PER_THREAD``,
    at least one and at most ``cores``.
    """
    return max(1, min(cores, int(work // WORK_PER_THREAD)))


def work_per_step(config: Any) -> float | None:
    """Multiply-adds of one training step, roughly, from the sizes ``config``
    names (images or points per step, data size, layer widths); None where it
    names none of them.

    A fully connected layer costs its inputs times its outputs per example, and
    the backward pass twice the forward, so a step is about three times the
    weights of the encoder and decoder times the examples in the step.
    """
    rows = getattr(config, "batch_size", None) or getattr(
        config, "num_datapoints", None
    )
    dataset = getattr(config, "dataset", None)
    size = _PIXELS.get(dataset) if isinstance(dataset, str) else None
    size = size or getattr(config, "data_dim", None)
    if not isinstance(rows, int) or not isinstance(size, int):
        return None
    latent = getattr(config, "latent_dim", None) or 50
    if getattr(config, "architecture", "mlp") == "conv":
        # Every pixel meets every channel pair of a 3x3 kernel in a few layers.
        depth = getattr(config, "base_depth", 32)
        per_example = 4 * 9 * size * depth * depth
    else:
        widths = [size, *getattr(config, "hidden_dims", ()), latent]
        per_example = 2 * sum(a * b for a, b in zip(widths, widths[1:], strict=False))
    particles = getattr(config, "num_particles", 1) or 1
    return 3.0 * rows * particles * per_example


def user_chose(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment sets torch's thread count (then torch has read it)."""
    environ = os.environ if environ is None else environ
    return any(environ.get(name, "").strip() for name in THREAD_VARIABLES)


def parse_threads(text: str) -> int:
    """``--threads``' value: an integer >= 1.

    :raises UsageError: for anything else, quoting ``text``.
    """
    try:
        return check_positive_int("threads", int(text))
    except (ValueError, UsageError):
        raise UsageError(f"threads must be a positive integer, got {text!r}") from None


#: ``--threads``' help
THREADS_HELP = (
    "torch's CPU threads (default: OMP_NUM_THREADS if set, else by the model's "
    "size: one for small models, at most one per core)"
)


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` to a command's parser (fit's comes from its options)."""

    def parse(text: str) -> int:
        try:
            return parse_threads(text)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parser.add_argument("--threads", type=parse, metavar="N", help=THREADS_HELP)


@contextmanager
def command_threads(threads: int | None) -> Iterator[None]:
    """Run a command with ``threads`` torch threads if given (``--threads``), and
    give torch its thread count back afterwards, whatever the command's fits set.
    """
    before = torch.get_num_threads()
    token = _chosen.set(threads)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        _chosen.reset(token)
        torch.set_num_threads(before)


def set_fit_threads(
    config: Any, device: torch.device, threads: int | None = None
) -> int | None:
    """Set torch's thread count for a fit of ``config`` on ``device``: ``threads``
    if given, else by its work per step where neither the command (``--threads``)
    nor the environment chose one. Return the count set, or None where it was left
    as it was.

    The count is chosen only for a CPU fit of a config whose sizes
    :func:`work_per_step` knows, and is at most :func:`available_cores`. It does
    not follow the machine's load: the same command on the same machine computes
    with the same count, so its numbers are the same run after run.
    """
    if threads is None:
        if _chosen.get() is not None or user_chose() or device.type != "cpu":
            return None
        work = work_per_step(config)
        if work is None:
            return None
        threads = threads_for_work(work, available_cores())
    torch.set_num_threads(threads)
    return threads
