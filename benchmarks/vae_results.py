"""README's results table for the VAE family on dynamically binarized MNIST.

Each row is a user's own pair of commands, run as a fresh process and timed by the
wall clock: ``ppl-models fit`` for ``--epochs`` epochs (784-400-z50 networks unless
the row says otherwise, batch 128, Adam 1e-3, seed 0), then ``ppl-models evaluate``
for the importance-weighted bound with ``--iwae-samples`` samples on the first
``--iwae-images`` test images. The table gives the test ELBO (the fit's, on the
whole test set, one sample per image), the IWAE bound with its standard error over
the images, -IWAE as the estimate of the test NLL that Burda et al. (2016) report,
and the published NLL beside the rows it has one for.

    PPL_MODELS_DATA=DIR python benchmarks/vae_results.py --epochs 2 --iwae-images 1000
    python benchmarks/vae_results.py --epochs 3280 --device cuda   # the paper's budget
    python benchmarks/vae_results.py --rows trace iwae5 --epochs 2

A row whose run directory already holds a finished fit and evaluation at the same
settings is read back, not run again, and a finished fit is evaluated anew where
only the evaluation's settings changed (``--fresh`` runs both anew), so a long table
can be built over several sittings. ``--retime`` runs finished rows' fits again for
their wall time alone, on a quieter machine say; a fit is seeded, so it must give
the same test ELBO, and its evaluation stands. The table is printed as Markdown
and written, with the hardware and the date, to ``OUT/results.md`` and
``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

#: row -> (label, ``fit`` arguments after ``fit``, published NLL or None);
#: Burda et al. (2016), Table 1, one stochastic layer, k = 5000, 3280 epochs.
ROWS: dict[str, tuple[str, list[str], float | None]] = {
    "trace": ("VAE, Trace_ELBO", ["vae", "--elbo", "trace"], 86.76),
    "meanfield": ("VAE, TraceMeanField_ELBO", ["vae", "--elbo", "meanfield"], 86.76),
    "iwae5": ("IWAE training, K = 5",
              ["vae", "--elbo", "iwae", "--num-particles", "5"], 85.54),
    "iwae50": ("IWAE training, K = 50",
               ["vae", "--elbo", "iwae", "--num-particles", "50"], 84.78),
    "iaf": ("VAE, IAF guide (2 flows)", ["vae", "--guide", "iaf", "--flows", "2"],
            None),
    "mixture": ("VAE, mixture prior (10)", ["vae", "--prior", "mixture"], None),
    "catvae": ("categorical VAE, 20 latents x 10 classes (Gumbel-softmax)",
               ["catvae", "--elbo", "meanfield", "--latent-dim", "20",
                "--num-classes", "10"], None),
}  # fmt: skip

#: the settings every row shares (the paper's 784-400-z50 where a row has z)
COMMON = ["--dataset", "mnist", "--binarize", "dynamic", "--batch-size", "128",
          "--lr", "1e-3", "--seed", "0", "--no-criticize"]  # fmt: skip
NETWORK = ["--hidden-dim", "400", "--latent-dim", "50"]


def fit_command(row: str, epochs: int, out: Path, device: str) -> list[str]:
    """The ``ppl-models fit`` command of ``row``."""
    model, *args = ROWS[row][1]
    # The categorical VAE's code is its own (N latents of K classes).
    network = NETWORK if model == "vae" else ["--hidden-dim", "400"]
    return ["ppl-models", "fit", model, *args, *COMMON, *network,
            "--epochs", str(epochs), "--device", device, "--out", str(out),
            "--overwrite"]  # fmt: skip


def evaluate_command(out: Path, samples: int, images: int, device: str) -> list[str]:
    """The ``ppl-models evaluate`` command of a row's run."""
    return ["ppl-models", "evaluate", str(out), "--iwae-samples", str(samples),
            "--iwae-images", str(images), "--device", device]  # fmt: skip


def run(command: list[str]) -> float:
    """Run ``command`` as a user would (the package's own ``ppl-models``), in a
    fresh process; its wall-clock seconds. Fails with its output's tail.
    """
    executable = [sys.executable, "-m", "ppl_models", *command[1:]]
    start = time.perf_counter()
    done = subprocess.run(executable, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"{shlex.join(command)} failed:\n{tail}")
    return seconds


def measure(row: str, args: argparse.Namespace) -> dict:
    """Fit and evaluate ``row`` (or read back a finished run at the same settings);
    its numbers.
    """
    out = args.out / row
    fit = fit_command(row, args.row_epochs.get(row, args.epochs), out, args.device)
    evaluate = evaluate_command(out, args.iwae_samples, args.iwae_images, args.device)
    record_path = out / "row.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if args.fresh or record.get("fit") != fit:
        record = {"fit_wall_seconds": run(fit)}
    elif args.retime:
        return retimed(record, out)
    elif record["evaluate"] == evaluate:
        return record
    fit_wall = record["fit_wall_seconds"]  # an earlier fit, evaluated anew
    evaluate_wall = run(evaluate)
    summary = json.loads((out / "summary.json").read_text())
    record = {
        "row": row,
        "label": ROWS[row][0],
        "published_nll": ROWS[row][2],
        "epochs": summary["epochs_done"],
        "fit_wall_seconds": fit_wall,
        "evaluate_wall_seconds": evaluate_wall,
        "test_elbo": summary["test_elbo"][-1],
        "test_iwae": summary["test_iwae"],
        "test_iwae_se": summary["test_iwae_se"],
        "iwae_samples": summary["iwae_samples"],
        "iwae_images": summary["iwae_images"],
        "fit": fit,
        "evaluate": evaluate,
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def retimed(record: dict, out: Path) -> dict:
    """``record`` with its fit timed again (on a quieter machine, say). A fit is
    seeded, so it must end with the same test ELBO to the last bit: then its
    evaluation stands.
    """
    seconds = run(record["fit"])
    summary = json.loads((out / "summary.json").read_text())
    if summary["test_elbo"][-1] != record["test_elbo"]:
        raise SystemExit(f"{record['row']}: the fit run again gave another test ELBO")
    record = {**record, "fit_wall_seconds": seconds}
    (out / "row.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def paired_differences(records: list[dict], args: argparse.Namespace) -> None:
    """Each row's IWAE bound minus the first row's, image by image, with the
    standard error of that mean difference (much smaller than either bound's: the
    images that are hard for one fit are hard for the other). Evaluates each fit
    again in this process with the command's seed, so the bounds are the table's;
    adds ``paired_difference`` and ``paired_difference_se`` to the records.
    """
    from ppl_models import load_fit

    per_image = []
    for record in records:
        fit = load_fit(args.out / record["row"], device=args.device)
        bounds = fit.evaluate(record["iwae_samples"], record["iwae_images"],
                              seed=fit.settings.seed, per_image=True)  # fmt: skip
        if abs(bounds["iwae"] - record["test_iwae"]) > 1e-3:
            raise SystemExit(f"{record['row']}: evaluated again to another bound")
        per_image.append(bounds["iwae_per_image"].double())
    for record, bounds in zip(records, per_image, strict=True):
        difference = bounds - per_image[0]
        record["paired_difference"] = float(difference.mean())
        record["paired_difference_se"] = float(
            difference.std() / difference.numel() ** 0.5
        )


def hardware(device: str) -> str:
    """The machine in words: CPU cores and model, or the GPU."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return f"{cores or os.cpu_count()} CPU cores ({platform.processor() or 'CPU'})"


def table(records: list[dict], args: argparse.Namespace) -> str:
    """The results as Markdown, with the budget, hardware and date above them."""
    today = datetime.date.today().isoformat()
    lines = [
        f"Dynamically binarized MNIST, {args.epochs} epoch(s) of the 60,000 "
        "training images (or as a row says); IWAE bound with K = "
        f"{args.iwae_samples} on the first {records[0]['iwae_images']} test "
        "images (± its standard error over the images); test ELBO on all 10,000. "
        f"{hardware(args.device)}, torch {torch.__version__}, {today}. Published: "
        "Burda et al. (2016), Table 1, k = 5000, after 3280 epochs.",
        "",
        "| model | epochs | fit (s) | test ELBO | IWAE bound "
        f"| IWAE bound - {records[0]['label']}'s, paired | NLL estimate "
        "| published NLL |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        published = "" if r["published_nll"] is None else f"{r['published_nll']:.2f}"
        paired = ""
        if "paired_difference" in r:
            paired = f"{r['paired_difference']:+.2f} ± {r['paired_difference_se']:.2f}"
        lines.append(
            f"| {r['label']} | {r['epochs']} | {r['fit_wall_seconds']:.0f} "
            f"| {r['test_elbo']:.2f} | {r['test_iwae']:.2f} ± {r['test_iwae_se']:.2f} "
            f"| {paired} | {-r['test_iwae']:.2f} | {published} |"
        )
    lines += ["", "Commands (each row: fit, then evaluate):", ""]
    for r in records:
        lines.append(f"- {r['label']}: `{shlex.join(r['fit'])}` then "
                     f"`{shlex.join(r['evaluate'])}`")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(ROWS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--row-epochs",
        nargs="+",
        default=[],
        metavar="ROW=N",
        help="another budget for some rows, e.g. iwae50=1",
    )
    parser.add_argument("--iwae-samples", type=int, default=5000)
    parser.add_argument("--iwae-images", type=int, default=10000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("runs/vae_results"))
    parser.add_argument("--fresh", action="store_true", help="rerun finished rows")
    parser.add_argument(
        "--paired",
        action="store_true",
        help="also each row's IWAE bound minus the first row's, image by image, "
        "with its standard error (evaluates every fit once more)",
    )
    parser.add_argument(
        "--retime",
        action="store_true",
        help="time finished rows' fits again, keeping their numbers (which must "
        "come out the same)",
    )
    args = parser.parse_args(argv)
    args.row_epochs = {
        row: int(n) for row, n in (item.split("=") for item in args.row_epochs)
    }
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for row in args.rows:
        records.append(measure(row, args))
        print(f"{row}: done", file=sys.stderr, flush=True)
    if args.paired:
        paired_differences(records, args)
    text = table(records, args)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(records, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
