"""Running out of resources: memory on the CPU (where torch raises a RuntimeError,
not torch.OutOfMemoryError), the evaluation's memory budget, and a full disk.

The limits are real where a subprocess can set them: ``RLIMIT_AS`` caps the address
space (set above what the process already maps, torch's libraries included) and
``RLIMIT_FSIZE`` the size of a file, which makes a write fail with EFBIG as a full
disk fails with ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ppl_models.models.vae.evaluate as evaluate
from ppl_models.errors import ResourceError, WriteError
from ppl_models.inference import train_steps
from ppl_models.inference.compiled import CompiledObjective
from ppl_models.inference.memory import is_out_of_memory
from ppl_models.io.atomic import TEMPORARY_SUFFIX, atomic_write, write_json
from ppl_models.io.checkpoint import load_checkpoint, save_checkpoint
from ppl_models.models.vae.evaluate import evaluate_bounds
from tests.inference.test_trainer import ppca_objective

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="resource limits as Linux sets them"
)

#: what torch's CPU allocator raises on Linux when malloc fails
CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:117] err == 0. DefaultCPUAllocator: can't "
    "allocate memory: you tried to allocate 400000000 bytes. Error code 12 (Cannot "
    "allocate memory)"
)


def _run(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter on one thread (a thread's stack counts
    against an address-space limit)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


# The helper that tells an out-of-memory error.


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(CPU_OOM),
        RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8"),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"),
        RuntimeError("std::bad_alloc"),
        MemoryError(),
    ],
)
def test_the_cpu_allocators_and_the_devices_errors_are_out_of_memory(error):
    assert is_out_of_memory(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
        ResourceError("the device ran out of memory at step 3 of 10"),
        ValueError("out of memory"),
        OSError(errno.ENOMEM, "Cannot allocate memory"),
    ],
)
def test_other_errors_and_the_zoos_own_are_not(error):
    assert not is_out_of_memory(error)


# Training: a plain RuntimeError from the CPU's allocator is a ResourceError.


def test_the_cpu_allocator_running_out_in_a_step_is_a_resource_error(monkeypatch):
    objective, optimizer, x = ppca_objective()
    original, calls = objective.forward, []

    def out_of_memory_at_step_2(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError(CPU_OOM)
        return original(*args)

    monkeypatch.setattr(objective, "forward", out_of_memory_at_step_2)
    with pytest.raises(ResourceError, match="ran out of memory at step 2 of 5"):
        train_steps(objective, optimizer, lambda: (x,), 5, progress=False)


def test_a_compiled_objective_passes_the_cpu_allocators_error_on(monkeypatch):
    # Compiling: the training loop, not "torch.compile failed", reports it.
    objective, _, x = ppca_objective()
    compiled = CompiledObjective(objective)

    def out_of_memory(*args):
        raise RuntimeError(CPU_OOM)

    monkeypatch.setattr(compiled, "_compile", lambda *args: out_of_memory)
    with pytest.raises(RuntimeError) as error:
        compiled(x)
    assert is_out_of_memory(error.value) and compiled.num_graphs == 0


def test_the_cpu_allocator_running_out_halves_the_evaluations_passes(monkeypatch):
    # As torch.OutOfMemoryError does (tests/models/test_vae_evaluate.py).
    passes = []

    def parts(vae, x, num_samples=1):
        if x.shape[0] * num_samples > 4:
            raise RuntimeError(CPU_OOM)
        passes.append(x.shape[0] * num_samples)
        log_lik = (-x.sum(-1)).expand(num_samples, x.shape[0])
        zero = torch.zeros_like(log_lik)
        return {"log_lik": log_lik, "log_prior": zero, "log_q": zero}

    monkeypatch.setattr(evaluate, "log_weight_parts", parts)
    x = torch.rand(10, 64)
    bounds = evaluate_bounds(None, x, 4, max_elements=64 * 40)
    assert max(passes) <= 4 and sum(passes) == 40
    assert bounds["iwae"] == pytest.approx(float(-x.sum(-1).mean()), rel=1e-6)


LIMITED_EVALUATION = """
import json, resource, sys
import pyro, torch
from ppl_models.models.vae import VAE, VAEConfig
import ppl_models.models.vae.evaluate as evaluate

def mapped():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

torch.manual_seed(0)
vae = VAE(VAEConfig(image_shape=(8, 8), latent_dim=2)).eval()
x = torch.rand(20, 64).round()
pyro.set_rng_seed(1)
free = evaluate.evaluate_bounds(vae, x, 3000)  # within the default budget
failed, real = [], evaluate.log_weight_parts

def counted(vae, x, num_samples=1):
    try:
        return real(vae, x, num_samples)
    except RuntimeError:
        failed.append(x.shape[0] * num_samples)
        raise

evaluate.log_weight_parts = counted
# 128 MiB above what is mapped now; a budget of 1 GiB puts all 20 images x 3000
# draws in one pass, of about 190 MB.
limit = mapped() + (128 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
pyro.set_rng_seed(1)
limited = evaluate.evaluate_bounds(vae, x, 3000, max_elements=2**28)
print(json.dumps({"free": free, "limited": limited, "failed": failed}))
"""


def test_an_evaluation_over_the_memory_limit_halves_its_passes_and_finishes():
    done = _run(LIMITED_EVALUATION)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["failed"], "the first pass should not have fitted"
    # Other passes take other draws: the bounds agree to Monte Carlo precision.
    for key in ("elbo", "iwae", "distortion"):
        assert result["limited"][key] == pytest.approx(result["free"][key], rel=2e-3)


LIMITED_FIT = """
import resource, sys
from ppl_models.cli import main
import sklearn.datasets  # mapped before the limit, as torch is

def mapped():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

limit = mapped() + (384 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.exit(main(sys.argv[1:]))
"""


def test_a_fit_over_the_memory_limit_stops_in_one_line_with_advice(tmp_path):
    # 200,000 hidden units: the networks' 107 MB fit under the limit, their
    # gradients, Adam's two moments and a batch's activations do not.
    out = tmp_path / "big"
    done = _run(
        LIMITED_FIT,
        *("fit", "vae", "--dataset", "digits", "--epochs", "1", "--hidden-dim"),
        *("200000", "--no-criticize", "--device", "cpu", "--out", str(out)),
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "ppl-models: training stopped: the device ran out of memory in epoch 1 "
        "with batch size 128: try a smaller --batch-size"
    )
    assert not out.exists()  # no checkpoint was written: nothing to keep


# The evaluation's budget covers everything a pass allocates.

PEAK = """
import json, os, resource, sys
import torch
from ppl_models.models.vae import VAE, VAEConfig
from ppl_models.models.vae.evaluate import evaluate_bounds

budget = int(sys.argv[1])
for values, samples in json.loads(sys.argv[2]):
    if os.fork():  # one child per config: the peak is each one's own
        os.wait()
        continue
    config = VAEConfig(**values)
    torch.manual_seed(0)
    vae = VAE(config).eval()
    x = torch.rand(2, config.num_pixels).round()
    evaluate_bounds(vae, x[:1], 2, max_elements=budget)  # the first call's own costs
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    evaluate_bounds(vae, x, samples, max_elements=budget)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps([values, (after - before) * 1024]), flush=True)
    os._exit(0)
"""

#: VAEs whose passes allocate in different places (wide hidden layers, a
#: likelihood and a prior with many temporaries, convolutions), with K
PEAK_CONFIGS = [
    ({"image_shape": (8, 8), "latent_dim": 2}, 20_000),
    ({"image_shape": (8, 8), "latent_dim": 2, "hidden_dims": (1000, 500)}, 5_000),
    (
        {
            "image_shape": (28, 28),
            "latent_dim": 20,
            "hidden_dims": (64,),
            "likelihood": "continuous_bernoulli",
            "prior": "mixture",
        },
        2_000,
    ),  # fmt: skip
    (
        {
            "image_shape": (8, 8),
            "latent_dim": 2,
            "architecture": "conv",
            "base_depth": 8,
        },
        2_000,
    ),  # fmt: skip
]


def test_the_peak_memory_of_an_evaluation_stays_within_its_budget():
    # The resident set's growth over a run of many passes under a budget of 16 MiB
    # of float32 (before, one pass of the first VAE allocated 210 MB). glibc's heap
    # is told to hand large blocks back (a fixed mmap threshold): otherwise its
    # reuse of freed blocks, not the tensors held, decides the peak.
    budget = 2**22
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(budget), json.dumps(PEAK_CONFIGS)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    peaks = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(peaks) == len(PEAK_CONFIGS), done.stderr
    assert all(peak <= budget * 4 for _, peak in peaks), peaks


# A full disk, a file too large, a read-only file system.


def _no_temporary_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(TEMPORARY_SUFFIX)]


@pytest.mark.parametrize(
    "number, reason",
    [
        (errno.ENOSPC, "no space left on device"),
        (errno.EFBIG, "file too large"),
        (errno.EDQUOT, "disk quota exceeded"),
    ],
)
def test_a_failed_write_names_the_file_and_the_reason_and_keeps_the_old_one(
    tmp_path, number, reason
):
    path = tmp_path / "summary.json"
    write_json(path, {"old": 1})

    def full(handle):
        handle.write(b"partial")
        raise OSError(number, os.strerror(number))

    with pytest.raises(WriteError) as error:
        atomic_write(path, full)
    assert str(error.value).startswith(f"could not write {path}: {reason}")
    assert str(error.value).endswith("; the previous summary.json is intact")
    assert error.value.errno == number and error.value.path == path
    assert json.loads(path.read_text()) == {"old": 1}
    assert _no_temporary_files(tmp_path)


def test_torch_saves_runtime_error_after_a_full_disk_is_one_write_error(
    tmp_path, monkeypatch
):
    # torch's zip writer raises "unexpected pos" while handling the OSError: the
    # error names the disk, not the zip writer.
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, "vae", {"epoch": 1})
    real_open = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 100:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_open(fd, mode)))
    with pytest.raises(WriteError) as error:
        save_checkpoint(path, "vae", {"epoch": 2, "big": torch.zeros(10_000)})
    assert str(error.value) == (
        f"could not write {path}: no space left on device; the previous "
        "checkpoint.pt is intact"
    )
    assert isinstance(error.value.__cause__, OSError)
    monkeypatch.undo()
    assert load_checkpoint(path, "vae")["epoch"] == 1
    assert _no_temporary_files(tmp_path)


def test_a_read_only_file_system_is_named_before_anything_is_written(
    tmp_path, monkeypatch
):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(WriteError, match="read-only file system; no partial file"):
        write_json(tmp_path / "config.json", {})


def test_other_failures_of_a_write_pass_unchanged(tmp_path):
    def refused(handle):
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        atomic_write(tmp_path / "x", refused)
    assert _no_temporary_files(tmp_path)


FILE_SIZE_LIMITED = """
import resource, shutil, signal, sys
from ppl_models.cli import main

fit = sys.argv[3:]
assert main([*fit, "--epochs", "1"]) == 0
shutil.copy(fit[-1] + "/checkpoint.pt", sys.argv[2])
# Without the signal, a write past the limit kills the process; ignored, the write
# fails with EFBIG, as one to a full disk fails with ENOSPC.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(main([*fit, "--epochs", "2", "--resume"]))
"""


def test_a_checkpoint_past_the_file_size_limit_stops_the_fit_in_one_line(tmp_path):
    # Epoch 1 is written without a limit; resumed to epoch 2 under a limit of 64 kB
    # the checkpoint (about 0.7 MB) cannot be written, the other files can.
    out = tmp_path / "run"
    fit = ["fit", "vae", "--dataset", "digits", "--latent-dim", "2", "--no-criticize"]
    fit += ["--device", "cpu", "--out", str(out)]
    done = _run(FILE_SIZE_LIMITED, str(64_000), str(tmp_path / "epoch1.pt"), *fit)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the epochs' log lines
    assert last == (
        f"ppl-models: error: could not write {out / 'checkpoint.pt'}: "
        "file too large (over the file system's or the process's size limit); the "
        "previous checkpoint.pt is intact"
    )
    before = (tmp_path / "epoch1.pt").read_bytes()
    assert (out / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(out / "checkpoint.pt", "vae")["epoch"] == 1
    assert _no_temporary_files(out)
