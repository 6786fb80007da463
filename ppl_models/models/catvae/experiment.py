"""The categorical VAE on the VAE's stack: its fit (with a picture of what each
latent controls and the discrete model's bounds) and its registered spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from ppl_models.criticism import replay_latents
from ppl_models.inference.params import local_params
from ppl_models.models.catvae.config import CatVAEConfig, CatVAERunConfig
from ppl_models.models.catvae.model import CatVAE
from ppl_models.models.vae import VAEFit, VAESpec
from ppl_models.models.vae.experiment import VAEEvaluation
from ppl_models.plots import plot_image_grid, save_figure
from ppl_models.registry import register_model


def latent_traversal(vae: CatVAE, x: torch.Tensor) -> torch.Tensor:
    """Image ``x`` (P,)'s most probable code with latent i set to class k, decoded:
    the pixel means (N * K, P), latent by latent."""
    n, k = vae.config.latent_dim, vae.config.num_classes
    with torch.no_grad(), local_params():  # the user's param store untouched
        code = F.one_hot(vae.guide.encoder(x[None])[0].argmax(-1), k).to(x.dtype)
        codes = code.expand(n, k, n, k).clone()  # [i, k] is a code
        index = torch.arange(n, device=x.device)
        codes[index, :, index] = torch.eye(k, device=x.device)  # its latent i: k
        trace = replay_latents(vae.model, {"z": codes.flatten(0, 1)}, None, n * k)
    return trace.nodes["x"]["fn"].mean


class CatVAEFit(VAEFit):
    """A trained categorical VAE (:class:`VAEFit`, built with :class:`CatVAE`)."""

    model_name, network_class = "catvae", CatVAE
    run_config_class = CatVAERunConfig
    latent_dims = ("latent", "class")

    def criticize(self, out_dir: str | Path) -> dict[str, Any]:
        """The VAE's criticism, and ``latents.png``: what each latent controls."""
        numbers = super().criticize(out_dir)
        images = latent_traversal(self.vae, self.data.test[0])
        figure = plot_image_grid(
            images, self.data.image_shape, ncols=self.vae.config.num_classes,
            title="Test image 1's code, latent i (row) set to class k (column)",
            xlabel="class k", ylabel="latent i",
        )  # fmt: skip
        save_figure(figure, Path(out_dir) / "latents.png")
        return {**numbers, "figures": [*numbers["figures"], "latents.png"]}


@register_model
class CatVAESpec(VAESpec):
    """The categorical VAE: the VAE's stack with a code of one-hot latents."""

    name = "catvae"
    description = "categorical VAE: N latents of K classes, Gumbel-softmax (SVI)"
    inference_methods = {
        "amortized": "q(z|x) relaxed one-hot categoricals from an encoder, fitted "
        "with the relaxed reconstruction and the categoricals' KL (--elbo; "
        "--straight-through: hard codes decoded)"
    }
    evaluation_keys = (*VAESpec.evaluation_keys, "test_relaxed_elbo",
                       "test_relaxed_iwae")  # fmt: skip
    config_class, fit_class = CatVAERunConfig, CatVAEFit

    @classmethod
    def evaluation_entries(cls, fit: VAEFit, options: VAEEvaluation) -> dict[str, Any]:
        """Beside the discrete model's bounds, the relaxed model's (what Trace_ELBO
        and IWAE training optimize), from the same draws' seeds, and the
        temperature they are computed at."""
        bounds = fit.evaluate(options.iwae_samples, options.iwae_images,
                              seed=fit.settings.seed, reported=False)  # fmt: skip
        return {
            "test_relaxed_elbo": bounds["elbo"],
            "test_relaxed_iwae": bounds["iwae"],
            "temperature": fit.vae.temperature,
        }

    @classmethod
    def smoke_fit_args(cls) -> list[str]:
        return ["--dataset", "digits", "--latent-dim", "3", "--num-classes", "4",
                "--hidden-dim", "16", "--epochs", "2",
                "--batch-size", "256"]  # fmt: skip

    @classmethod
    def demo_runs(cls) -> dict[str, list[str]]:
        return {"catvae-digits": [
            "--dataset", "digits", "--binarize", "threshold", "--latent-dim", "8",
            "--num-classes", "4", "--hidden-dim", "256", "--activation", "relu",
            "--epochs", "40",
            "--batch-size", "32", "--anneal-rate", "3e-4", "--overwrite",
        ]}  # fmt: skip

    @classmethod
    def figure_notes(cls, config: Any) -> dict[str, str]:
        return {
            **super().figure_notes(config),
            "latents.png": "a test image's code with each latent (row) set to "
            "each class (column): what each latent controls",
        }

    @classmethod
    def smoke_configs(cls) -> Iterator[tuple[str, CatVAEConfig, str]]:
        cases = [(False, "meanfield"), (True, "meanfield"), (False, "trace"),
                 (True, "trace"), (False, "iwae")]  # fmt: skip
        for straight, elbo in cases:
            code = "straight-through" if straight else "relaxed"
            config = CatVAEConfig((8, 8), 3, 4, hidden_dims=(16,),
                                  straight_through=straight)  # fmt: skip
            yield f"{code}-{elbo}", config, elbo
