"""The VAE on the command line: fit (and resume) into a run directory, evaluate it,
criticise it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyro
import torch

from ppl_models.data.images import BINARIZATIONS, DATASETS, load_images
from ppl_models.io.run_dir import (
    CHECKPOINT,
    update_summary,
    write_config,
    write_summary,
)
from ppl_models.models.vae.criticize import criticize_vae
from ppl_models.models.vae.fit import (
    VAEFit,
    check_likelihood,
    default_likelihood,
    fit_vae,
)
from ppl_models.models.vae.model import ELBOS, LIKELIHOODS, VAE, VAEConfig, make_elbo
from ppl_models.models.vae.networks import ACTIVATIONS, ARCHITECTURES
from ppl_models.models.vae.priors import PRIORS
from ppl_models.models.vae.runs import (
    TRAIN_KEYS,
    VAE_CONFIG_KEYS,
    history_summary,
    load_fit,
    run_and_checkpoint,
    save_nelbo_plot,
    write_metrics,
)
from ppl_models.models.vae.train import History, TrainSettings
from ppl_models.registry import ModelSpec, SmokeCase, register_model
from ppl_models.seeding import caller_rng_kept, derived_seed


def _epoch_done(history: History, run_dir: Path) -> None:
    write_metrics(history, run_dir)
    update_summary(run_dir, **history_summary(history))


@register_model
class VAESpec(ModelSpec):
    """Variational autoencoders on images, fitted by amortized SVI."""

    name = "vae"
    description = "variational autoencoder on MNIST or 8x8 digits (amortized SVI)"
    inference_methods = {
        "amortized": "an encoder network q(z|x) fitted with Trace_ELBO "
        "(--elbo trace) or TraceMeanField_ELBO (--elbo meanfield)",
    }
    headline_keys = ("test_elbo", "test_iwae", "fit_seconds")
    criticism_keys = ("ppc", "ppc_pixel_extreme_fraction")
    evaluation_keys = ("test_iwae", "test_elbo_iwae_samples", "test_distortion",
                       "test_rate")  # fmt: skip

    @classmethod
    def add_fit_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--dataset", default="mnist", choices=DATASETS, help="the images")
        add("--data-dir", type=Path, help="data root holding mnist/")
        add("--train-images", type=int, help="use the first N training images (all)")
        add("--test-images", type=int, help="use the first N test images (all)")
        add(
            "--binarize",
            default="dynamic",
            choices=BINARIZATIONS,
            help="dynamic: resample pixels as Bernoulli draws every epoch; "
            "threshold: at 0.5; none: grey levels",
        )
        add("--architecture", default="mlp", choices=ARCHITECTURES, help="networks")
        add("--latent-dim", type=int, default=None, help="default 50 (mlp), 16 (conv)")
        add(
            "--hidden-dim",
            type=int,
            nargs="+",
            default=[400],
            dest="hidden_dims",
            help="widths of the mlp's hidden layers",
        )
        add(
            "--activation",
            default="softplus",
            choices=tuple(ACTIVATIONS),
            help="the networks' nonlinearity",
        )
        add("--base-depth", type=int, default=32, help="channels of the conv nets")
        add("--prior", default="normal", choices=PRIORS, help="p(z)")
        add(
            "--mixture-components",
            type=int,
            default=10,
            help="components of the mixture prior",
        )
        add("--likelihood", choices=LIKELIHOODS, help="default: by --binarize")
        add(
            "--elbo",
            default="trace",
            choices=ELBOS,
            help="trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL)",
        )
        add("--num-particles", type=int, default=1, help="ELBO samples per image")
        add("--epochs", type=int, default=5, help="epochs in all, resumed ones too")
        add("--batch-size", type=int, default=128, help="images per step")
        add("--lr", type=float, default=1e-3, help="Adam's learning rate")
        add("--clip-grad", type=float, help="clip the gradient norm to this value")
        add(
            "--checkpoint-every", type=int, default=1, help="epochs between checkpoints"
        )
        add("--resume", action="store_true", help="continue the run in --out")
        add("--no-criticize", action="store_true", help="skip the pictures and checks")

    @classmethod
    def fit_run(
        cls, args: argparse.Namespace, run_dir: Path, device: torch.device
    ) -> dict[str, Any]:
        checkpoint = run_dir / CHECKPOINT
        run, record = run_and_checkpoint(args, run_dir, device)
        # Check everything cheap, then load the data, before writing any file.
        settings = TrainSettings(
            **{k: run[k] for k in TRAIN_KEYS if k != "epochs"},
            epochs=args.epochs,
            clip_grad=args.clip_grad,
            checkpoint_every=args.checkpoint_every,
            compile=args.compile,
        )
        vae_args = {k: run[k] for k in VAE_CONFIG_KEYS}
        vae_args["likelihood"] = vae_args["likelihood"] or default_likelihood(
            run["binarize"]
        )
        make_elbo(settings.elbo, VAEConfig(**vae_args), settings.num_particles)
        check_likelihood(vae_args["likelihood"], run["binarize"])
        data = load_images(
            run["dataset"],
            binarize=run["binarize"],
            data_dir=args.data_dir,
            device=device,
            limit_train=run["train_images"],
            limit_test=run["test_images"],
        )
        run.update(likelihood=vae_args["likelihood"], model=cls.name)
        write_config(run_dir, run)
        started = {
            **run,
            "device": str(device),
            "compile": args.compile,
            "epochs": args.epochs,
        }
        # Resumed or not, the summary starts afresh: the history comes back from
        # the checkpoint, criticism is redone, and held-out bounds of the shorter
        # run (``evaluate``) would be stale beside the new epochs.
        write_summary(run_dir, started)
        fit = fit_vae(
            data,
            device=device,
            checkpoint_path=checkpoint,
            resume_from=record,
            on_epoch_end=lambda h: _epoch_done(h, run_dir),
            **{k: getattr(settings, k) for k in TRAIN_KEYS},
            clip_grad=settings.clip_grad,
            checkpoint_every=settings.checkpoint_every,
            compile=settings.compile,
            **vae_args,
        )
        save_nelbo_plot(fit.history, run_dir)
        summary = update_summary(run_dir, **history_summary(fit.history))
        if args.no_criticize:
            return summary
        with caller_rng_kept([fit.vae.device]):
            pyro.set_rng_seed(derived_seed(run["seed"], "criticism"))
            criticism = criticize_vae(fit.vae, fit.data, run_dir)
        return update_summary(run_dir, **criticism)

    @classmethod
    def add_evaluate_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--iwae-samples",
            type=int,
            default=100,
            help="importance samples per image for the IWAE bound",
        )
        parser.add_argument(
            "--iwae-images", type=int, default=None, help="first N test images (all)"
        )
        parser.add_argument("--data-dir", type=Path, help="data root holding mnist/")

    @classmethod
    def evaluate_run(
        cls, run_dir: Path, args: argparse.Namespace, device: torch.device
    ) -> dict[str, Any]:
        fit = load_fit(run_dir, device, args.data_dir)
        bounds = fit.evaluate(
            args.iwae_samples, args.iwae_images, seed=fit.settings.seed
        )
        return update_summary(
            run_dir,
            test_iwae=bounds["iwae"],
            test_elbo_iwae_samples=bounds["elbo"],
            test_distortion=bounds["distortion"],
            test_rate=bounds["rate"],
            iwae_samples=args.iwae_samples,
            iwae_images=args.iwae_images or fit.data.test.shape[0],
        )

    @classmethod
    def load_fit(cls, run_dir: Path, device: torch.device) -> VAEFit:
        return load_fit(run_dir, device)

    @classmethod
    def smoke_fit_args(cls) -> list[str]:
        return [
            "--dataset", "digits", "--latent-dim", "2", "--hidden-dim", "16",
            "--epochs", "2", "--batch-size", "256",
        ]  # fmt: skip

    @classmethod
    def criticize_run(cls, run_dir: Path, device: torch.device) -> dict[str, Any]:
        fit = load_fit(run_dir, device)
        with caller_rng_kept([fit.vae.device]):
            pyro.set_rng_seed(derived_seed(fit.settings.seed, "criticism"))
            criticism = criticize_vae(fit.vae, fit.data, run_dir)
        return update_summary(run_dir, **criticism)

    @classmethod
    def demo_runs(cls) -> dict[str, list[str]]:
        return {
            "vae-digits": [
                "--dataset", "digits", "--binarize", "threshold", "--latent-dim", "2",
                "--hidden-dim", "256", "--epochs", "40", "--batch-size", "32",
                "--lr", "1e-3", "--overwrite",
            ]
        }  # fmt: skip

    @classmethod
    def smoke_cases(cls, device: torch.device) -> Iterator[SmokeCase]:
        x = torch.rand(5, 64, device=device).round()
        variants = [
            ("mlp-normal-trace", dict(), "trace"),
            ("mlp-normal-meanfield", dict(), "meanfield"),
            ("mlp-mixture-trace", dict(prior="mixture", mixture_components=3), "trace"),
            ("conv-normal-trace", dict(architecture="conv", base_depth=4), "trace"),
            ("mlp-continuous", dict(likelihood="continuous_bernoulli"), "trace"),
            ("mlp-normal-lik", dict(likelihood="normal"), "meanfield"),
        ]
        for name, overrides, elbo in variants:
            config = VAEConfig(
                image_shape=(8, 8), latent_dim=3, hidden_dims=(16,), **overrides
            )
            vae = VAE(config).to(device)
            yield SmokeCase(
                name=f"vae-{name}",
                inference="amortized",
                model=vae.model,
                guide=vae.guide,
                elbo=lambda config=config, elbo=elbo: make_elbo(elbo, config, 2),
                fit_args=(x,),
                predict_args=(None, 5),
                guide_predict_args=(x,),
                latent_sites=("z",),
            )
