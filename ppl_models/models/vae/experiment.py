"""The VAE on the command line: fit (and resume) into a run directory, evaluate it,
criticise it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from ppl_models import distributed
from ppl_models.data.images import load_images
from ppl_models.io.run_dir import CHECKPOINT, update_summary, write_summary
from ppl_models.models.vae.board import summary_writer_class
from ppl_models.models.vae.config import VAERunConfig
from ppl_models.models.vae.fit import VAEFit, fit_vae
from ppl_models.models.vae.history import (
    History,
    history_summary,
    save_nelbo_plot,
    write_metrics,
)
from ppl_models.models.vae.model import VAEConfig, check_likelihood
from ppl_models.models.vae.priors import PRIORS
from ppl_models.models.vae.runs import load_fit, resume_record
from ppl_models.models.vae.train import TrainSettings
from ppl_models.registry import ModelSpec, RunOptions, SmokeCase, register_model
from ppl_models.run_config import config_to_dict, write_run_config
from ppl_models.settings import common_values, setting


@dataclass(frozen=True)
class VAEEvaluation:
    """The options of ``ppl-models evaluate`` for a VAE run."""

    iwae_samples: int = setting(100, "importance samples per image for the IWAE bound")
    iwae_images: int | None = setting(None, "first N test images (all)")
    data_dir: Path | None = setting(None, "data root holding mnist/")


def _epoch_done(history: History, run_dir: Path) -> None:
    write_metrics(history, run_dir)
    update_summary(run_dir, **history_summary(history))


@register_model
class VAESpec(ModelSpec):
    """Variational autoencoders on images, fitted by amortized SVI."""

    name = "vae"
    description = "variational autoencoder on MNIST or 8x8 digits (amortized SVI)"
    inference_methods = {
        "amortized": "an encoder network q(z|x), Normal or through IAF flows "
        "(--guide iaf), fitted with Trace_ELBO (--elbo trace), TraceMeanField_ELBO "
        "(--elbo meanfield) or the importance-weighted bound (--elbo iwae)",
    }
    headline_keys = ("test_elbo", "test_iwae", "fit_seconds")
    criticism_keys = ("ppc", "ppc_pixel_extreme_fraction")
    evaluation_keys = ("test_iwae", "test_iwae_se", "test_elbo_iwae_samples",
                       "test_distortion", "test_rate")  # fmt: skip
    config_class = VAERunConfig
    evaluate_class = VAEEvaluation
    can_resume = True
    data_parallel = True
    #: what the stack builds and trains (see :class:`VAEFit`): a model built on the
    #: VAE's stack names its own fit class here
    fit_class: ClassVar[type[VAEFit]] = VAEFit

    @classmethod
    def fit_run(
        cls,
        config: VAERunConfig,
        run_dir: Path,
        device: torch.device,
        options: RunOptions,
    ) -> dict[str, Any]:
        record = None
        if options.resume:
            record = resume_record(run_dir, config, device, cls.fit_class)
        config = config.resolved()
        # Check everything cheap, then load the data, before writing any file.
        settings = config.train_settings(compile=options.compile)
        network = config.network_settings()
        fit_class = cls.fit_class
        network_config = config.network_config_class(**network)
        fit_class.make_elbo(settings.elbo, network_config, settings.num_particles)
        check_likelihood(config.likelihood, config.binarize)
        if config.tensorboard:
            summary_writer_class()  # refused before any file is written
        data = load_images(
            config.dataset,
            binarize=config.binarize,
            data_dir=config.data_dir,
            device=device,
            limit_train=config.train_images,
            limit_test=config.test_images,
        )
        write_run_config(run_dir, cls.name, config)
        started = {
            "model": cls.name,
            **config_to_dict(config),
            "device": str(device),
            "compile": options.compile,
            "world_size": distributed.current().size,
        }
        # Resumed or not, the summary starts afresh: the history comes back from
        # the checkpoint, criticism is redone, and held-out bounds of the shorter
        # run (``evaluate``) would be stale beside the new epochs.
        write_summary(run_dir, started)
        fit = fit_vae(
            data,
            device=device,
            checkpoint_path=run_dir / CHECKPOINT,
            resume_from=record,
            on_epoch_end=lambda h: _epoch_done(h, run_dir),
            tensorboard=run_dir / "tensorboard" if config.tensorboard else None,
            compile=settings.compile,
            fit_class=fit_class,
            **common_values(config, TrainSettings),
            **network,
        )
        fit.config = config  # the data's cut as the command line asked for it
        save_nelbo_plot(fit.history, run_dir)
        summary = update_summary(run_dir, **history_summary(fit.history))
        if config.no_criticize:
            return summary
        return update_summary(run_dir, **fit.criticize(run_dir))

    @classmethod
    def evaluate_run(
        cls, run_dir: Path, options: VAEEvaluation, device: torch.device
    ) -> dict[str, Any]:
        fit = load_fit(run_dir, device, options.data_dir, cls.fit_class)
        bounds = fit.evaluate(
            options.iwae_samples, options.iwae_images, seed=fit.settings.seed
        )
        return update_summary(
            run_dir,
            test_iwae=bounds["iwae"],
            test_elbo_iwae_samples=bounds["elbo"],
            test_distortion=bounds["distortion"],
            test_rate=bounds["rate"],
            # over the images; none from one image (JSON has no NaN)
            test_iwae_se=None if math.isnan(bounds["iwae_se"]) else bounds["iwae_se"],
            iwae_samples=options.iwae_samples,
            iwae_images=options.iwae_images or fit.data.test.shape[0],
            **cls.evaluation_entries(fit, options),
        )

    @classmethod
    def evaluation_entries(cls, fit: VAEFit, options: VAEEvaluation) -> dict[str, Any]:
        """Summary entries ``evaluate`` adds beside the VAE's bounds (none; a model
        built on the VAE's stack may add its own)."""
        return {}

    @classmethod
    def load_fit(cls, run_dir: Path, device: torch.device) -> VAEFit:
        return load_fit(run_dir, device, fit_class=cls.fit_class)

    @classmethod
    def smoke_fit_args(cls) -> list[str]:
        return [
            "--dataset", "digits", "--latent-dim", "2", "--hidden-dim", "16",
            "--epochs", "2", "--batch-size", "256",
        ]  # fmt: skip

    @classmethod
    def criticize_run(cls, run_dir: Path, device: torch.device) -> dict[str, Any]:
        fit = load_fit(run_dir, device, fit_class=cls.fit_class)
        return update_summary(run_dir, **fit.criticize(run_dir))

    @classmethod
    def demo_runs(cls) -> dict[str, list[str]]:
        return {
            "vae-digits": [
                "--dataset", "digits", "--binarize", "threshold", "--latent-dim", "2",
                "--hidden-dim", "256", "--epochs", "40", "--batch-size", "32",
                "--lr", "1e-3", "--overwrite",
            ],
            # the same VAE with a richer posterior: IAF guide, IWAE bound (K = 5)
            "vae-digits-iaf-iwae": [
                "--dataset", "digits", "--binarize", "threshold", "--latent-dim", "2",
                "--hidden-dim", "256", "--epochs", "40", "--batch-size", "32",
                "--lr", "1e-3", "--guide", "iaf", "--elbo", "iwae",
                "--num-particles", "5", "--overwrite",
            ],
        }  # fmt: skip

    @classmethod
    def figure_notes(cls, config: Any) -> dict[str, str]:
        notes = {
            "nelbo.png": "the negative ELBO per image by epoch, train and test: the "
            "gap between them is overfitting",
            "samples.png": "images decoded from codes drawn from the prior",
            "reconstructions.png": "test images beside their reconstructions",
            "manifold.png": "images decoded across a grid of prior quantiles of the "
            "2-d code",
            "latent_space.png": "the encoder's mean code of each test image, by digit",
            "ppc.png": "image statistics of test images (red) among those of "
            "replicated images; p near 0 or 1 flags a misfit",
            "ppc_pixels.png": "each pixel's check of its mean value: extreme pixels "
            "are where the model is off",
        }
        if config.prior not in PRIORS:  # a discrete code: criticism draws neither
            del notes["manifold.png"], notes["latent_space.png"]
        return notes

    @classmethod
    def smoke_configs(cls) -> Iterator[tuple[str, Any, str]]:
        """The small networks of :meth:`smoke_cases`, of 8x8 images: each case's
        name (after the model's), network config and ELBO."""
        variants = [
            ("mlp-normal-trace", dict(), "trace"),
            ("mlp-normal-meanfield", dict(), "meanfield"),
            ("mlp-mixture-trace", dict(prior="mixture", mixture_components=3), "trace"),
            ("conv-normal-trace", dict(architecture="conv", base_depth=4), "trace"),
            ("mlp-continuous", dict(likelihood="continuous_bernoulli"), "trace"),
            ("mlp-normal-lik", dict(likelihood="normal"), "meanfield"),
            ("mlp-normal-iwae", dict(), "iwae"),
            ("mlp-iaf-trace", dict(guide="iaf"), "trace"),
            ("conv-iaf-iwae", dict(architecture="conv", base_depth=4, guide="iaf"),
             "iwae"),
        ]  # fmt: skip
        for name, overrides, elbo in variants:
            config = VAEConfig(
                image_shape=(8, 8), latent_dim=3, hidden_dims=(16,), **overrides
            )
            yield name, config, elbo

    @classmethod
    def smoke_cases(cls, device: torch.device) -> Iterator[SmokeCase]:
        """A case of each of :meth:`smoke_configs`, built and trained as
        ``fit_class`` builds and trains a model of the stack."""
        x = torch.rand(5, 64, device=device).round()  # 5 images of 8x8 pixels
        fit_class = cls.fit_class
        for name, config, elbo in cls.smoke_configs():
            vae = fit_class.network_class(config).to(device)
            yield SmokeCase(
                name=f"{cls.name}-{name}",
                inference="amortized",
                model=vae.model,
                guide=vae.guide,
                elbo=lambda c=config, e=elbo: fit_class.make_elbo(e, c, 2),
                fit_args=(x,),
                predict_args=(None, 5),
                guide_predict_args=(x,),
                latent_sites=("z",),
            )
