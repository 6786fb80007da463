"""PPCA on the command line: fit into a run directory, criticise a run directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyro
import torch

from ppl_models.data.arrays import load_array_file
from ppl_models.inference import initialize_guide
from ppl_models.io.checkpoint import load_checkpoint, load_state
from ppl_models.io.run_dir import CHECKPOINT, update_summary, write_summary, write_table
from ppl_models.models.ppca.checkpoint import resumed_steps
from ppl_models.models.ppca.config import PPCARunConfig
from ppl_models.models.ppca.fit import INFERENCE_METHODS, PPCAFit, fit_ppca, make_elbo
from ppl_models.models.ppca.model import PPCA, make_guide
from ppl_models.plots import plot_loss_trace, plot_ppc, plot_replay_scatter, save_figure
from ppl_models.registry import ModelSpec, RunOptions, SmokeCase, register_model
from ppl_models.seeding import caller_rng_kept, derived_seed
from ppl_models.settings import read_run_config, write_run_config
from ppl_models.validation import as_data_matrix, check_positive_int


@register_model
class PPCASpec(ModelSpec):
    """Probabilistic PCA (Tipping & Bishop): MAP and mean-field VI."""

    name = "ppca"
    description = "probabilistic PCA, x ~ Normal(w @ z, sigma) with known sigma"
    inference_methods = INFERENCE_METHODS
    config_class = PPCARunConfig
    can_resume = True
    headline_keys = (
        "final_loss",
        "axis_cosine_true",
        "axis_cosine_closed_form",
        "replay_cov_rel_error",
        "fit_seconds",
    )
    criticism_keys = ("replay_cov_rel_error", "ppc")

    @classmethod
    def fit_run(
        cls,
        config: PPCARunConfig,
        run_dir: Path,
        device: torch.device,
        options: RunOptions,
    ) -> dict[str, Any]:
        record, data = None, None
        if options.resume:
            record = load_checkpoint(run_dir / CHECKPOINT, "ppca", device)
            resumed_steps(record, config.steps)  # refused before any file is written
        else:
            check_positive_int("ppc_samples", config.ppc_samples)
            if config.data is not None:
                data = load_array_file(config.data)
                n, d = as_data_matrix(data, "data").shape
                config = replace(config, num_datapoints=n, data_dim=d)
        # Written first, so a checkpoint on disk always has its config beside it.
        write_run_config(run_dir, cls.name, config)
        fit = fit_ppca(
            data,
            inference=config.inference,
            num_datapoints=config.num_datapoints,
            data_dim=config.data_dim,
            latent_dim=config.latent_dim,
            noise_scale=config.noise_scale,
            steps=config.steps,
            lr=config.lr,
            seed=config.seed,
            device=device,
            compile=options.compile,
            checkpoint_path=run_dir / CHECKPOINT,
            checkpoint_every=config.checkpoint_every,
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
            "compile": options.compile,
            "seed": config.seed,
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
        return criticize_fit(fit, run_dir, config.ppc_samples, config.seed)

    @classmethod
    def criticize_run(cls, run_dir: Path, device: torch.device) -> dict[str, Any]:
        config = read_run_config(PPCARunConfig, run_dir)
        fit = cls.load_fit(run_dir, device)
        return criticize_fit(fit, run_dir, config.ppc_samples, config.seed)

    @classmethod
    def load_fit(cls, run_dir: Path, device: torch.device) -> PPCAFit:
        config = read_run_config(PPCARunConfig, run_dir)
        return load_fit(run_dir / CHECKPOINT, config, device)

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


def load_fit(path: Path, config: PPCARunConfig, device: torch.device) -> PPCAFit:
    """Rebuild a :class:`PPCAFit` from a checkpoint and its run's config."""
    record = load_checkpoint(path, "ppca", device)
    model = PPCA(config.data_dim, config.latent_dim, config.noise_scale).to(device)
    guide = make_guide(model, config.inference)
    initialize_guide(guide, record["x"])
    load_state(model, record["model_state"], path)
    load_state(guide, record["guide_state"], path)
    return PPCAFit(
        model=model,
        guide=guide,
        inference=config.inference,
        x=record["x"],
        losses=record["losses"],
        w_true=record.get("w_true"),
        fit_seconds=record["fit_seconds"],
    )
