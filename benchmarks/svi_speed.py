"""How fast the zoo trains and evaluates, against hand-written PyTorch and Pyro's
own example loop. Prints tables and writes the same numbers as JSON.

    python benchmarks/svi_speed.py                  # CPU
    python benchmarks/svi_speed.py --device cuda    # a GPU

VAE rows (the default 784-400-50 MLP, Bernoulli likelihood, Adam at lr 1e-3), per
ELBO and batch size:

* ``handwritten``: the same networks, loss and optimizer in plain PyTorch, eager;
* ``pyro-example``: the loop of Pyro's VAE example (DataLoader, a copy to the
  device per batch, ``svi.step`` returning a float);
* ``zoo``: the zoo's training step (device-side ELBO, NaN watch), as ``fit`` runs it;
* ``zoo-compiled``: the same with ``--compile default``.

``step ms`` is the median time of a step over blocks of steps after a warm-up;
``epoch s`` is one full pass over the training set, the best of ``--epochs`` after
a warm-up epoch (for the zoo: epochs of a ``train_vae`` run, evaluation excluded,
so the compile in the first epoch is not counted).
Images are thresholded MNIST when it is found, else random binary images of the
same size, which take the same time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import (  # noqa: E402
    handwritten_step,
    stock_loader,
    stock_pyro_epoch,
    stock_pyro_svi,
)
from measure import device_name, peak_memory, synchronize, time_blocks  # noqa: E402
from ppca_speed import ppca_rows  # noqa: E402

from ppl_models import resolve_device  # noqa: E402
from ppl_models.data import ImageData, load_images, mnist_available  # noqa: E402
from ppl_models.data.batches import train_batches  # noqa: E402
from ppl_models.inference import make_objective, svi_step  # noqa: E402
from ppl_models.inference.guard import NonFiniteWatch  # noqa: E402
from ppl_models.models.vae import VAE, VAEConfig, make_elbo  # noqa: E402
from ppl_models.models.vae.evaluate import evaluate_bounds  # noqa: E402
from ppl_models.models.vae.train import TrainSettings, train_vae  # noqa: E402

PATHS = ("handwritten", "pyro-example", "zoo", "zoo-compiled")


def load_data(device: torch.device, data_dir: Path | None) -> ImageData:
    """Thresholded MNIST if present, else random binary images of its size."""
    if mnist_available(data_dir):
        return load_images(
            "mnist", binarize="threshold", data_dir=data_dir, device=device
        )
    generator = torch.Generator().manual_seed(0)
    images = {
        n: (torch.rand(n, 784, generator=generator) < 0.13).float()
        for n in (60000, 10000)
    }
    return ImageData(
        images[60000].to(device),
        torch.zeros(60000, dtype=torch.long, device=device),
        images[10000].to(device),
        torch.zeros(10000, dtype=torch.long, device=device),
        (28, 28),
        "threshold",
        "synthetic",
    )


def fresh_vae(device: torch.device) -> VAE:
    """The default VAE, same initial weights every time."""
    torch.manual_seed(0)
    return VAE(VAEConfig()).to(device)


def zoo_step(vae: VAE, data: ImageData, elbo: str, compile: str | None):
    """The step ``train_vae`` takes, with a NaN watch that is never read."""
    objective = make_objective(
        vae.model,
        vae.guide,
        make_elbo(elbo, vae.config),
        data.train[:2],
        compile=compile,
    )
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-3)
    watch = NonFiniteWatch(data.device, check_every=10**9)
    return lambda x: svi_step(objective, optimizer, x, watch=watch)


def vae_rows(
    data: ImageData, elbo: str, batch: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Step and epoch times of every path for one ELBO and batch size."""
    device = data.device
    svi = stock_pyro_svi(fresh_vae(device), elbo)
    steps = {
        "handwritten": handwritten_step(fresh_vae(device), elbo),
        "pyro-example": svi.step,
        "zoo": zoo_step(fresh_vae(device), data, elbo, None),
    }
    if not args.no_compile:
        steps["zoo-compiled"] = zoo_step(fresh_vae(device), data, elbo, "default")
    with pyro.validation_enabled(False):
        step_seconds = time_blocks(
            steps,
            # Full batches only: a ragged last one would be a second compile.
            lambda: (x for x in train_batches(data, batch) if len(x) == batch),
            device,
            block=args.block,
            repeats=args.repeats,
            warmup=args.warmup,
        )
    rows = []
    for path in steps:
        with peak_memory(device) as memory:
            epoch = epoch_seconds(path, data, elbo, batch, args.epochs)
        rows.append(
            {
                "elbo": elbo,
                "batch": batch,
                "path": path,
                "step_ms": 1e3 * step_seconds[path],
                "epoch_s": epoch,
                "images_per_s": data.train.shape[0] / epoch,
                "peak_mib": memory["peak_mib"],
            }
        )
    hand = rows[0]
    stock = rows[1]
    for row in rows:
        row["step_vs_handwritten"] = row["step_ms"] / hand["step_ms"]
        row["epoch_vs_handwritten"] = row["epoch_s"] / hand["epoch_s"]
        row["speedup_vs_pyro_example"] = stock["epoch_s"] / row["epoch_s"]
    return rows


def epoch_seconds(
    path: str, data: ImageData, elbo: str, batch: int, timed: int
) -> float:
    """Seconds for one training epoch on ``path``: the best of ``timed`` epochs
    after a warm-up epoch (which, on the compiled path, holds the compile).
    """
    device = data.device
    vae = fresh_vae(device)
    if path in ("zoo", "zoo-compiled"):
        settings = TrainSettings(
            elbo=elbo,
            epochs=1 + timed,
            batch_size=batch,
            compile="default" if path == "zoo-compiled" else None,
        )
        small_test = ImageData(
            data.train, data.train_labels, data.test[:100], data.test_labels[:100],
            data.image_shape, data.binarize, data.name,
        )  # fmt: skip
        history = train_vae(vae, small_test, settings, progress=False).history
        return min(history.train_seconds[1:])
    if path == "pyro-example":
        svi = stock_pyro_svi(vae, elbo)
        loader = stock_loader(data.train, batch, device)

        def epoch() -> None:
            stock_pyro_epoch(svi, loader, device)
    else:
        step = handwritten_step(vae, elbo)

        def epoch() -> None:
            for x in train_batches(data, batch):
                step(x)

    times = []
    with pyro.validation_enabled(False):
        for _ in range(1 + timed):
            synchronize(device)
            start = time.perf_counter()
            epoch()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return min(times[1:])


def evaluation_rows(data: ImageData, iwae_samples: int) -> list[dict[str, Any]]:
    """Time and peak memory of the test ELBO and the importance-weighted bound."""
    vae = fresh_vae(data.device)
    rows = []
    for name, images, k in (
        ("test ELBO", data.test, 1),
        (f"IWAE K={iwae_samples}", data.test[:1000], iwae_samples),
    ):
        evaluate_bounds(vae, images[:100], k)  # warm-up
        with peak_memory(data.device) as memory:
            start = time.perf_counter()
            evaluate_bounds(vae, images, k)
            seconds = time.perf_counter() - start
        rows.append(
            {
                "evaluation": name,
                "images": images.shape[0],
                "seconds": seconds,
                "images_per_s": images.shape[0] / seconds,
                "peak_mib": memory["peak_mib"],
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
    """Rows as an aligned text table; ``columns`` maps key to header."""
    cells = [[_cell(row[key]) for key in columns] for row in rows]
    widths = [
        max(len(header), *(len(c[i]) for c in cells))
        for i, header in enumerate(columns.values())
    ]
    print("  ".join(h.rjust(w) for h, w in zip(columns.values(), widths, strict=True)))
    for line in cells:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
    print()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--data-dir", type=Path, help="data root holding mnist/")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--elbos", nargs="+", default=["trace", "meanfield"])
    parser.add_argument("--block", type=int, default=20, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per path")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per path")
    parser.add_argument("--ppca-steps", type=int, default=1000)
    parser.add_argument("--iwae-samples", type=int, default=100)
    parser.add_argument("--no-compile", action="store_true", help="skip compiled rows")
    parser.add_argument("--json", type=Path, default=Path("svi_speed.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    start = time.perf_counter()
    data = load_data(device, args.data_dir)
    result: dict[str, Any] = {
        "device": device_name(device),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "data": data.name,
        "vae": [],
    }
    print(f"{result['device']}; torch {torch.__version__}, pyro {pyro.__version__}")
    print(f"data: {data.name}, {data.train.shape[0]} training images\n")
    for elbo in args.elbos:
        for batch in args.batch_sizes:
            result["vae"] += vae_rows(data, elbo, batch, args)
    print_table(
        result["vae"],
        {
            "elbo": "elbo", "batch": "batch", "path": "path", "step_ms": "step ms",
            "step_vs_handwritten": "x hand", "epoch_s": "epoch s",
            "epoch_vs_handwritten": "x hand", "speedup_vs_pyro_example": "vs example",
            "images_per_s": "img/s", "peak_mib": "peak MiB",
        },
    )  # fmt: skip
    result["ppca"] = ppca_rows(device, args.ppca_steps, compile=not args.no_compile)
    print_table(
        result["ppca"],
        {"inference": "PPCA", "path": "path", "steps_per_s": "steps/s",
         "compile_s": "compile s", "vs_plain": "x plain"},
    )  # fmt: skip
    result["evaluation"] = evaluation_rows(data, args.iwae_samples)
    print_table(
        result["evaluation"],
        {"evaluation": "evaluation", "images": "images", "seconds": "seconds",
         "images_per_s": "img/s", "peak_mib": "peak MiB"},
    )  # fmt: skip
    result["total_seconds"] = time.perf_counter() - start
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {result['total_seconds']:.0f} s; numbers in {args.json}")


if __name__ == "__main__":
    main()
