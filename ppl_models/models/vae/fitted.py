"""A trained VAE: its networks, data, settings and history, and what a user does
with it (criticise, evaluate, sample, save, export to ArviZ)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyro
import torch

from ppl_models.data.images import ImageData
from ppl_models.errors import UsageError
from ppl_models.io.checkpoint import save_checkpoint
from ppl_models.io.run_dir import CHECKPOINT, write_summary
from ppl_models.models.vae.config import VAERunConfig
from ppl_models.models.vae.criticize import criticize_vae, reconstruct, sample_images
from ppl_models.models.vae.evaluate import MAX_ELEMENTS, evaluate_bounds
from ppl_models.models.vae.history import (
    History,
    history_summary,
    save_nelbo_plot,
    write_metrics,
)
from ppl_models.models.vae.model import VAE, make_elbo
from ppl_models.models.vae.train import TrainSettings
from ppl_models.run_config import config_to_dict, write_run_config
from ppl_models.seeding import caller_rng_kept, derived_seed
from ppl_models.validation import check_positive_int


@dataclass
class VAEFit:
    """A trained VAE with its data, its training settings and its history. It
    implements :class:`ppl_models.fits.Fit`.

    A model built on the VAE's stack subclasses it, naming its own model name,
    network module (built as ``network_class(network_config)``, with ``model`` and
    ``guide``) and run config (whose ``network_config_class`` is the module's
    config, a :class:`~ppl_models.models.vae.network_config.NetworkConfig`), and
    ``make_elbo`` where the VAE's does not serve.
    """

    model_name: ClassVar[str] = "vae"
    network_class: ClassVar[type] = VAE
    run_config_class: ClassVar[type] = VAERunConfig
    make_elbo: ClassVar[Any] = staticmethod(make_elbo)
    #: the dims of one image's code ``z`` in :meth:`to_inference_data`
    latent_dims: ClassVar[tuple[str, ...]] = ("latent",)

    vae: VAE
    data: ImageData
    settings: TrainSettings
    history: History
    #: the run's settings, as ``config.json`` holds them
    config: VAERunConfig
    #: ``optimizer_state`` and ``rng`` after the last epoch, for a checkpoint a run
    #: can go on from (empty where unknown)
    resume_state: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The fit's numbers: its settings, device, compile mode and per-epoch
        ELBOs (nats per image), as ``summary.json`` holds them before criticism.
        """
        return {
            "model": self.model_name,
            **config_to_dict(self.config),
            "device": str(self.vae.device),
            "compile": self.settings.compile,
            **history_summary(self.history),
        }

    def criticize(self, out_dir: str | Path) -> dict[str, Any]:
        """Draw the criticism figures into ``out_dir`` (created if need be) and
        return the checks' numbers (see
        :func:`~ppl_models.models.vae.criticize.criticize_vae`). The draws come from
        a seed derived from the run's, so a fit and a later ``criticize`` report
        the same numbers; the caller's generators are kept.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with caller_rng_kept([self.vae.device]):
            pyro.set_rng_seed(derived_seed(self.config.seed, "criticism"))
            return criticize_vae(self.vae, self.data, out_dir)

    def to_inference_data(self, num_samples: int = 100, num_images: int = 200) -> Any:
        """The fit on its first ``num_images`` test images as ArviZ's InferenceData:
        ``num_samples`` draws of each image's code ``z`` (image, latent) from the
        encoder, and replicated images beside the observed ones (image, pixel).
        No log likelihood: each image has a code of its own, which leaving the
        image out would leave undefined, so PSIS-LOO does not apply (its Pareto k
        values say as much). Drawn from a seed derived from the run's; the caller's
        generators are kept. Needs the ``arviz`` extra.
        """
        from ppl_models.criticism.inference_data import to_inference_data

        check_positive_int("num_samples", num_samples)
        check_positive_int("num_images", num_images)
        images = self.data.test[:num_images].to(self.vae.device)
        with caller_rng_kept([self.vae.device]):
            pyro.set_rng_seed(derived_seed(self.config.seed, "inference data"))
            return to_inference_data(
                self.vae.model,
                self.vae.guide,
                fit_args=(images,),
                predict_args=(None, images.shape[0]),
                guide_args=(images,),
                observed_site="x",
                num_samples=num_samples,
                dims={"z": ["image", *self.latent_dims], "x": ["image", "pixel"]},
            )

    def checkpoint(self) -> dict[str, Any]:
        """The fit as ``checkpoint.pt`` holds it: the networks' config and weights,
        the epochs done and their history, and the state to go on from.
        """
        return {
            "config": self.vae.config.to_dict(),
            "vae_state": self.vae.state_dict(),
            "epoch": self.history.epochs_done,
            "history": asdict(self.history),
            **self.resume_state,
        }

    def save(self, run_dir: str | Path) -> None:
        """Write the fit into ``run_dir`` (created if need be), replacing what is
        there: ``config.json``, ``checkpoint.pt``, ``metrics.csv``, ``nelbo.png``
        and ``summary.json`` (afresh: no criticism yet); ``ppl_models.load_fit``
        then rebuilds it. It takes no lock: hold
        :func:`~ppl_models.io.run_dir.writing_run` where others may write too.
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(run_dir, self.model_name, self.config)
        save_checkpoint(run_dir / CHECKPOINT, self.model_name, self.checkpoint())
        write_metrics(self.history, run_dir)
        save_nelbo_plot(self.history, run_dir)
        write_summary(run_dir, self.summary())

    def sample(self, num_images: int) -> torch.Tensor:
        """Pixel means of images decoded from prior draws, (num_images, P)."""
        return sample_images(self.vae, num_images)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel means of ``x`` (B, P) after encoding and decoding, (B, P)."""
        return reconstruct(self.vae, x.to(self.vae.device))

    def evaluate(
        self,
        iwae_samples: int = 100,
        num_images: int | None = None,
        *,
        seed: int = 0,
        max_elements: int = MAX_ELEMENTS,
        per_image: bool = False,
        reported: bool = True,
    ) -> dict[str, float]:
        """ELBO and importance-weighted bound (nats per image) on the first
        ``num_images`` test images (all by default; at most all), with
        ``iwae_samples`` samples (see :func:`evaluate_bounds`, also for
        ``per_image``); the draws come from a seed derived from ``seed``, on
        forked generators, so the caller's random state is as it was. The bounds
        are those of the model the fit reports (see ``VAE.reported_model``), or
        with ``reported=False`` of the model as trained (a categorical VAE's
        relaxed one).
        """
        available = self.data.test.shape[0]
        if num_images is not None:
            check_positive_int("iwae_images", num_images)
            if num_images > available:
                raise UsageError(
                    f"iwae_images={num_images}, but the test set has {available} images"
                )
        images = self.data.test[:num_images]
        devices = [images.device] if images.device.type == "cuda" else []
        reporting = self.vae.reported_model() if reported else nullcontext()
        with torch.random.fork_rng(devices=devices), reporting:
            torch.manual_seed(derived_seed(seed, "evaluation"))
            return evaluate_bounds(
                self.vae, images, iwae_samples, max_elements=max_elements,
                per_image=per_image,
            )  # fmt: skip
