"""PPCA on the command line: fit into a run directory, criticise a run directory."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyro
import torch

from ppl_models.data.arrays import load_array_file
from ppl_models.errors import UsageError
from ppl_models.inference import initialize_guide
from ppl_models.io.checkpoint import load_checkpoint, load_state
from ppl_models.io.run_dir import (
    CHECKPOINT,
    read_config,
    update_summary,
    write_config,
    write_summary,
    write_table,
)
from ppl_models.models.ppca.checkpoint import resumed_steps
from ppl_models.models.ppca.fit import INFERENCE_METHODS, PPCAFit, fit_ppca, make_elbo
from ppl_models.models.ppca.model import PPCA, make_guide
from ppl_models.plots import plot_loss_trace, plot_ppc, plot_replay_scatter, save_figure
from ppl_models.registry import ModelSpec, SmokeCase, register_model
from ppl_models.seeding import caller_rng_kept, derived_seed
from ppl_models.validation import as_data_matrix, check_positive_int


@register_model
class PPCASpec(ModelSpec):
    """Probabilistic PCA (Tipping & Bishop): MAP and mean-field VI."""

    name = "ppca"
    description = "probabilistic PCA, x ~ Normal(w @ z, sigma) with known sigma"
    inference_methods = INFERENCE_METHODS
    headline_keys = (
        "final_loss",
        "axis_cosine_true",
        "axis_cosine_closed_form",
        "replay_cov_rel_error",
        "fit_seconds",
    )
    criticism_keys = ("replay_cov_rel_error", "ppc")

    @classmethod
    def add_fit_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add(
            "--inference",
            default="map",
            choices=tuple(INFERENCE_METHODS),
            help="map: point estimates of w and z; meanfield: a Normal guide for each",
        )
        add(
            "--data",
            type=Path,
            help="a .npy or .csv file of shape (N, data_dim); default: simulate",
        )
        add("--num-datapoints", type=int, default=5000, help="N, when simulating")
        add("--data-dim", type=int, default=2, help="D, when simulating")
        add("--latent-dim", type=int, default=1, help="K, the principal axes")
        add("--noise-scale", type=float, default=0.5, help="sigma, the known noise sd")
        add(
            "--steps",
            type=int,
            default=1000,
            help="full-batch SVI steps in all, resumed ones too",
        )
        add(
            "--checkpoint-every",
            type=int,
            default=500,
            help="steps between checkpoints (one is also written after the last "
            "step and on Ctrl-C)",
        )
        add("--resume", action="store_true", help="continue the run in --out")
        add("--lr", type=float, default=0.05, help="Adam's learning rate")
        add(
            "--ppc-samples",
            type=int,
            default=500,
            help="replicated data sets for the predictive checks",
        )

    @classmethod
    def fit_run(
        cls, args: argparse.Namespace, run_dir: Path, device: torch.device
    ) -> dict[str, Any]:
        config, record, data = _run_settings(cls.name, args, run_dir, device)
        config["steps"] = args.steps
        # Written first, so a checkpoint on disk always has its config beside it.
        write_config(run_dir, config)
        fit = fit_ppca(
            data,
            inference=config["inference"],
            num_datapoints=config["num_datapoints"],
            data_dim=config["data_dim"],
            latent_dim=config["latent_dim"],
            noise_scale=config["noise_scale"],
            steps=args.steps,
            lr=config["lr"],
            seed=config["seed"],
            device=device,
            compile=args.compile,
            checkpoint_path=run_dir / CHECKPOINT,
            checkpoint_every=args.checkpoint_every,
            resume_from=record,
        )
        losses = fit.losses.tolist()
        write_table(
            run_dir,
            "metrics.csv",
            {"step": list(range(1, len(losses) + 1)), "loss": losses},
        )
        title = f"PPCA, {fit.inference}: loss trace"
        save_figure(
            plot_loss_trace({fit.inference: losses}, title=title), run_dir / "loss.png"
        )
        summary = {
            "model": cls.name,
            "inference": fit.inference,
            "device": str(device),
            "compile": args.compile,
            "seed": config["seed"],
            "steps": len(losses),
            "initial_loss": losses[0],
            "final_loss": losses[-1],
            "w": fit.w.tolist(),
            "w_closed_form": fit.w_closed_form.tolist(),
            **fit.axis_cosines(),
            "fit_seconds": fit.fit_seconds,
        }
        if fit.w_true is not None:
            summary["w_true"] = fit.w_true.tolist()
        if fit.w_scale is not None:
            summary["w_scale"] = fit.w_scale.tolist()
        write_summary(run_dir, summary)
        return criticize_fit(fit, run_dir, config["ppc_samples"], config["seed"])

    @classmethod
    def criticize_run(cls, run_dir: Path, device: torch.device) -> dict[str, Any]:
        config = read_config(run_dir)
        fit = cls.load_fit(run_dir, device)
        return criticize_fit(fit, run_dir, config["ppc_samples"], config["seed"])

    @classmethod
    def load_fit(cls, run_dir: Path, device: torch.device) -> PPCAFit:
        return load_fit(run_dir / CHECKPOINT, read_config(run_dir), device)

    @classmethod
    def smoke_fit_args(cls) -> list[str]:
        return ["--steps", "50", "--num-datapoints", "200", "--ppc-samples", "20"]

    @classmethod
    def demo_runs(cls) -> dict[str, list[str]]:
        return {
            f"ppca-{name}": ["--inference", name, "--overwrite"]
            for name in INFERENCE_METHODS
        }

    @classmethod
    def smoke_cases(cls, device: torch.device) -> Iterator[SmokeCase]:
        for inference in INFERENCE_METHODS:
            model = PPCA(data_dim=3, latent_dim=2).to(device)
            x = torch.randn(3, 7, device=device)
            yield SmokeCase(
                name=f"ppca-{inference}",
                inference=inference,
                model=model,
                guide=make_guide(model, inference),
                elbo=lambda inference=inference: make_elbo(inference),
                fit_args=(x,),
                predict_args=(None, 7),
                latent_sites=("w", "z"),
            )


def _run_settings(
    name: str, args: argparse.Namespace, run_dir: Path, device: torch.device
) -> tuple[dict[str, Any], dict[str, Any] | None, Any]:
    """The run's config, the checkpoint to resume from (``--resume``) and the data.

    A resumed run takes its settings from its ``config.json``; only ``--steps`` (in
    all), ``--checkpoint-every`` and ``--compile`` are new. The command line has
    already refused to replace a run without ``--overwrite``.
    """
    if args.resume:
        checkpoint = run_dir / CHECKPOINT
        if not checkpoint.is_file():
            raise UsageError(f"--resume: {run_dir} holds no checkpoint to resume")
        config = read_config(run_dir)
        record = load_checkpoint(checkpoint, "ppca", device)
        resumed_steps(record, args.steps)  # refused before any file is written
        return config, record, None
    check_positive_int("ppc_samples", args.ppc_samples)
    data = load_array_file(args.data) if args.data is not None else None
    data_dim = args.data_dim if data is None else as_data_matrix(data, "data").shape[1]
    config = {
        "model": name,
        "inference": args.inference,
        "data": str(args.data) if args.data is not None else None,
        "num_datapoints": args.num_datapoints if data is None else len(data),
        "data_dim": data_dim,
        "latent_dim": args.latent_dim,
        "noise_scale": args.noise_scale,
        "steps": args.steps,
        "lr": args.lr,
        "seed": args.seed,
        "ppc_samples": args.ppc_samples,
    }
    return config, None, data


def criticize_fit(
    fit: PPCAFit, run_dir: Path, ppc_samples: int, seed: int
) -> dict[str, Any]:
    """Replay inferred latents, run the predictive checks, write plots and summary.

    Draws come from a seed derived from the run's (see :mod:`ppl_models.seeding`),
    so ``fit`` and a later ``criticize`` report the same numbers.
    """
    with caller_rng_kept([fit.x.device]):
        pyro.set_rng_seed(derived_seed(seed, "criticism"))
        generated = fit.replay()
        figure = plot_replay_scatter(
            fit.x.T,
            {f"replayed ({fit.inference})": generated.T},
            title=f"PPCA, {fit.inference}: observed vs replayed latents",
        )
        save_figure(figure, run_dir / "replay.png")
        checks = fit.posterior_predictive_check(num_samples=ppc_samples)
        save_figure(
            plot_ppc(
                checks, title=f"PPCA, {fit.inference}: posterior predictive checks"
            ),
            run_dir / "ppc.png",
        )
    return update_summary(
        run_dir,
        replay_cov_rel_error=fit.replay_cov_rel_error(generated),
        ppc={name: check.as_dict() for name, check in checks.items()},
    )


def load_fit(path: Path, config: dict[str, Any], device: torch.device) -> PPCAFit:
    """Rebuild a :class:`PPCAFit` from a checkpoint and its run's config."""
    record = load_checkpoint(path, "ppca", device)
    model = PPCA(config["data_dim"], config["latent_dim"], config["noise_scale"]).to(
        device
    )
    guide = make_guide(model, config["inference"])
    initialize_guide(guide, record["x"])
    load_state(model, record["model_state"], path)
    load_state(guide, record["guide_state"], path)
    return PPCAFit(
        model=model,
        guide=guide,
        inference=config["inference"],
        x=record["x"],
        losses=record["losses"],
        w_true=record.get("w_true"),
        fit_seconds=record["fit_seconds"],
    )
