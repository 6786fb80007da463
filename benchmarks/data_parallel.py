"""Training images per second of data-parallel VAE training by process count, on
the same total batch.

Each row trains the same model on the same total batch per step, split across N
processes: 1 process with ``--batch-size B``, N processes under
``torch.distributed.run`` (torchrun) with ``--batch-size B/N`` each. Every command
runs in a fresh process (a fresh launcher and ranks for N > 1) into a fresh
scratch run directory. Each process gets ``OMP_NUM_THREADS`` (default 1) so that N
processes on N cores compare fairly with one process on one core's worth of
threads. "images/s" is the run's own ``images_per_second`` from ``summary.json``
(training images over training time, all ranks together); "wall s" is the whole
command, start-up, data loading, process-group set-up and evaluation included.

    python benchmarks/data_parallel.py --repeats 3
    python benchmarks/data_parallel.py --processes 1 2 4 --device cuda
    PPL_MODELS_DATA=DIR python benchmarks/data_parallel.py --mnist
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
DIGITS = ["--dataset", "digits"]
MNIST = ["--dataset", "mnist", "--train-images", "6000", "--test-images", "1000"]


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def machine(device: str) -> str:
    """The machine in words: CPU, cores and, for a GPU run, the GPUs."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line for line in info if line.startswith("model name")]
        if names:
            cpu = names[0].split(":", 1)[1].strip()
    except OSError:
        pass
    words = f"{cpu}, {cores()} cores, torch {torch.__version__}"
    if device.startswith("cuda") and torch.cuda.is_available():
        count = torch.cuda.device_count()
        words += f", {count} x {torch.cuda.get_device_name(0)}"
    return words


def command(processes: int, fit_args: list[str]) -> list[str]:
    """The argv of one training command with ``processes`` ranks."""
    if processes == 1:
        return [sys.executable, "-m", "ppl_models", *fit_args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [f"--nproc-per-node={processes}"]
    return [*launcher, "-m", "ppl_models", *fit_args]


def run_once(
    processes: int, fit_args: list[str], threads: int
) -> tuple[float, float, int]:
    """One command in a fresh process and a fresh run directory: its images per
    second (from ``summary.json``), its wall seconds and the world size it ran
    with.
    """
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    for var in THREAD_VARS:
        env[var] = str(threads)
    with tempfile.TemporaryDirectory(prefix="data-parallel-") as scratch:
        out = Path(scratch) / "run"
        argv = command(processes, [*fit_args, "--out", str(out)])
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            tail = (done.stderr or done.stdout)[-3000:]
            raise SystemExit(f"{' '.join(argv)} failed:\n{tail}")
        summary = json.loads((out / "summary.json").read_text())
    return float(summary["images_per_second"]), seconds, summary.get("world_size", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per row")
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="process counts, one row each (default: 1 2)",
    )
    parser.add_argument(
        "--total-batch",
        type=int,
        default=128,
        help="images per step over all processes (default: 128)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="default: 3")
    parser.add_argument(
        "--mnist",
        action="store_true",
        help="MNIST, first 6000 training and 1000 test images (from "
        "PPL_MODELS_DATA), instead of the 8x8 digits",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="each command's --device (default: cpu); cuda puts rank r on cuda:r",
    )
    parser.add_argument(
        "--threads-per-process",
        type=int,
        default=1,
        help="OMP_NUM_THREADS of every process (default: 1)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    args.processes = sorted(set(args.processes))  # 1 first: the speed-ups' base
    for count in args.processes:
        if count < 1 or args.total_batch % count:
            parser.error(f"--total-batch {args.total_batch} won't split {count} ways")

    dataset = MNIST if args.mnist else DIGITS
    print(
        f"{machine(args.device)}; vae {' '.join(dataset)}, {args.epochs} epochs, "
        f"total batch {args.total_batch}, device {args.device}, "
        f"OMP_NUM_THREADS={args.threads_per_process} per process, "
        f"median of {args.repeats}"
    )
    print(
        f"{'processes':>9} {'batch/proc':>10} {'images/s':>9} {'wall s':>7} "
        f"{'speed-up':>8} {'load':>5}"
    )
    rows: list[dict] = []
    base: float | None = None
    for count in args.processes:
        batch = args.total_batch // count
        fit_args = [
            "fit", "vae", *dataset, "--epochs", str(args.epochs),
            "--batch-size", str(batch), "--no-criticize", "--device", args.device,
        ]  # fmt: skip
        # Other users' processes count too: the load average before each row says
        # how quiet the machine was.
        load_average = os.getloadavg()[0]
        runs = [
            run_once(count, fit_args, args.threads_per_process)
            for _ in range(args.repeats)
        ]
        sizes = {size for _, _, size in runs}
        if sizes != {count}:
            raise SystemExit(f"{count} processes ran with world size {sizes}")
        rate = statistics.median(r for r, _, _ in runs)
        wall = statistics.median(s for _, s, _ in runs)
        if count == 1:
            base = rate
        speedup = rate / base if base else None
        shown = f"{speedup:7.2f}x" if speedup is not None else f"{'-':>8}"
        print(
            f"{count:>9} {batch:>10} {rate:>9.0f} {wall:>7.2f} {shown} "
            f"{load_average:5.1f}",
            flush=True,
        )
        rows.append(
            {
                "processes": count,
                "batch_per_process": batch,
                "images_per_second": rate,
                "wall_seconds": wall,
                "speedup": speedup,
                "load_average": load_average,
                "images_per_second_runs": [r for r, _, _ in runs],
                "wall_seconds_runs": [s for _, s, _ in runs],
            }
        )
    if args.json is not None:
        record = {
            "machine": machine(args.device),
            "dataset": " ".join(dataset),
            "epochs": args.epochs,
            "total_batch": args.total_batch,
            "device": args.device,
            "threads_per_process": args.threads_per_process,
            "repeats": args.repeats,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
