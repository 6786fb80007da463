"""Shared fixtures: the device under test and the location of the test data.

``PPL_MODELS_TEST_DEVICE`` picks the device the suite computes on (default: cpu),
as Pyro's own ``PYRO_DEVICE`` does, so ``PPL_MODELS_TEST_DEVICE=cuda pytest`` runs
the whole suite on a GPU.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

# The README's worked example model: registered for the test suite only, so every
# registry-parametrized test runs it, and `ppl-models list` never shows it.
import tests.models.example_model  # noqa: F401

TEST_DEVICE = os.environ.get("PPL_MODELS_TEST_DEVICE", "cpu")

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine"
)


@pytest.fixture(autouse=True)
def _empty_param_store() -> Iterator[None]:
    """Each test starts and ends with Pyro's global param store empty, as Pyro's own
    tests do: the VAE registers its networks there when a test calls it in Pyro's
    default mode, and a name left behind would be shared with the next test.
    """
    import pyro

    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt, as in a terminal, whatever the test
    runner set (a mutation-testing worker ignores it); restored afterwards.
    """
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device the suite tests on."""
    from ppl_models.device import resolve_device

    return resolve_device(TEST_DEVICE)


def assert_same_parameters(a: dict, b: dict) -> None:
    """Bitwise equal state dicts on the CPU; equal to float tolerance on a GPU,
    where some kernels are not deterministic.
    """
    assert a.keys() == b.keys()
    for name, value in a.items():
        if value.device.type == "cpu":
            assert torch.equal(value, b[name]), name
        else:
            assert torch.allclose(value, b[name], rtol=1e-5, atol=1e-6), name


def interrupt_at(module: torch.nn.Module, at: int) -> None:
    """Make ``module`` raise KeyboardInterrupt at its ``at``-th training call (one
    with gradients on). A hook, not a wrapper, so the state dict keeps its keys and
    a checkpoint written after the interrupt loads into a plain model.
    """
    calls = [0]

    def hook(module, args):
        if torch.is_grad_enabled():
            calls[0] += 1
            if calls[0] == at:
                raise KeyboardInterrupt

    module.register_forward_pre_hook(hook)


def mnist_root() -> Path | None:
    """The data root holding all of ``mnist/``: ``PPL_MODELS_DATA``'s, else the
    user's cache, where ``ppl-models`` downloads it; None if neither holds it.
    """
    from ppl_models.data.mnist import cache_root, mnist_available

    env = os.environ.get("PPL_MODELS_DATA")
    for root in ([Path(env)] if env else []) + [cache_root()]:
        if mnist_available(root):
            return root
    return None


@pytest.fixture
def mnist_data_root() -> Path:
    """The MNIST data root, or a skip saying why there is none."""
    root = mnist_root()
    if root is None:
        pytest.skip(
            "MNIST not found in PPL_MODELS_DATA or the user's cache: set "
            "PPL_MODELS_DATA to a folder holding mnist/"
        )
    return root


#: Tensor methods that copy a value to the host, so wait for the device.
HOST_READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__")


@contextmanager
def count_host_reads() -> Iterator[list[str]]:
    """Record every tensor-to-host read inside the block as "method (caller)".

    On a GPU each of these waits for the device; counting them on the CPU shows
    where a loop would synchronise. Reads made by ``torch.optim`` are left out:
    optimizers keep their step counters on the host on purpose, so reading them
    never waits for the device.
    """
    reads: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}
    depth = [0]  # a read inside a read (torch's dispatch calling back) counts once

    def counting(name: str):
        original = originals[name]

        def read(self, *args, **kwargs):
            if depth[0] == 0:
                caller = sys._getframe(1).f_globals.get("__name__", "?")
                if not caller.startswith("torch.optim"):
                    reads.append(f"{name} ({caller})")
            depth[0] += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                depth[0] -= 1

        return read

    for name in HOST_READS:
        setattr(torch.Tensor, name, counting(name))
    try:
        yield reads
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def block_imports(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Make importing any module named ``prefix...`` fail, as on a machine without
    that optional extra."""
    import builtins

    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        if name.startswith(prefix):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)
