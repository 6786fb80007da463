"""Wall time of whole ``ppl-models`` commands by torch thread count, quiet and with
the cores kept busy by other processes.

Each command runs in a fresh process, as a user runs it: "auto" leaves the thread
count to the command (no ``OMP_NUM_THREADS``, no ``--threads``), a number sets
``OMP_NUM_THREADS``. "Loaded" runs it beside one busy-looping process per core.

    python benchmarks/threads.py --repeats 3
    python benchmarks/threads.py --only vae-digits ppca --threads auto 1
    PPL_MODELS_DATA=DIR python benchmarks/threads.py --mnist   # adds the MNIST row
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: name -> ``ppl-models`` arguments; OUT is replaced by a scratch directory.
COMMANDS: dict[str, list[str]] = {
    "vae-digits": [
        "fit", "vae", "--dataset", "digits", "--epochs", "3", "--latent-dim", "2",
        "--no-criticize", "--out", "OUT", "--overwrite",
    ],
    "ppca": ["fit", "ppca", "--out", "OUT", "--overwrite"],
    "demo": ["demo", "--out", "OUT"],
    "vae-mnist": [
        "fit", "vae", "--dataset", "mnist", "--train-images", "6000",
        "--test-images", "1000", "--epochs", "1", "--no-criticize",
        "--out", "OUT", "--overwrite",
    ],
}  # fmt: skip
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` processes that spin on the CPU while the block runs; always
    ended afterwards.
    """
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(count)
    ]
    try:
        time.sleep(0.5)  # let them reach the cores
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


def run_seconds(args: list[str], threads: str, out: Path) -> float:
    """Wall seconds of one ``ppl-models`` command in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    if threads != "auto":
        env["OMP_NUM_THREADS"] = threads
    argv = [sys.executable, "-m", "ppl_models"]
    argv += [str(out) if arg == "OUT" else arg for arg in args]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell")
    parser.add_argument(
        "--only", nargs="+", choices=list(COMMANDS), help="default: all but demo"
    )
    parser.add_argument("--mnist", action="store_true", help="add vae-mnist")
    parser.add_argument(
        "--threads", nargs="+", help="auto and/or numbers (default: auto, 1..cores)"
    )
    parser.add_argument(
        "--conditions", nargs="+", default=["quiet", "loaded"], help="quiet, loaded"
    )
    args = parser.parse_args()
    names = args.only or ["vae-digits", "ppca"] + (["vae-mnist"] if args.mnist else [])
    threads = args.threads or ["auto", *map(str, range(1, cores() + 1))]
    import torch

    print(f"{cores()} cores, torch {torch.__version__}, median of {args.repeats}")
    header = " ".join(f"{c:>8}" for c in args.conditions)
    # Other users' processes count too: the load average before each row says how
    # quiet "quiet" was.
    print(f"{'command':<12} {'threads':>7} {header} {'load':>5}")
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            for count in threads:
                cells, load_average = [], os.getloadavg()[0]
                for condition in args.conditions:
                    load = busy_cores(cores()) if condition == "loaded" else _nothing()
                    with load:
                        times = [
                            run_seconds(COMMANDS[name], count, Path(scratch) / name)
                            for _ in range(args.repeats)
                        ]
                    cells.append(f"{statistics.median(times):8.2f}")
                row = f"{name:<12} {count:>7} {' '.join(cells)} {load_average:5.1f}"
                print(row, flush=True)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()
