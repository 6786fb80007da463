"""Fitting a VAE from Python in a few lines.

>>> from ppl_models.models.vae import fit_vae
>>> fit = fit_vae("digits", epochs=1, latent_dim=2, device="cpu", progress=False)
>>> fit.sample(4).shape
torch.Size([4, 64])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyro
import torch

from ppl_models.data.images import ImageData, load_images
from ppl_models.device import resolve_device
from ppl_models.errors import UsageError
from ppl_models.io.checkpoint import save_checkpoint
from ppl_models.io.run_dir import CHECKPOINT, write_summary
from ppl_models.models.vae.board import EpochBoard
from ppl_models.models.vae.config import VAERunConfig, default_likelihood
from ppl_models.models.vae.criticize import criticize_vae, reconstruct, sample_images
from ppl_models.models.vae.evaluate import MAX_ELEMENTS, evaluate_bounds
from ppl_models.models.vae.history import (
    History,
    history_summary,
    save_nelbo_plot,
    write_metrics,
)
from ppl_models.models.vae.model import (
    VAE,
    VAEConfig,
    check_hidden_dims,
    check_likelihood,
    make_elbo,
)
from ppl_models.models.vae.train import TrainSettings, train_vae
from ppl_models.run_config import config_to_dict, write_run_config
from ppl_models.seeding import caller_rng_kept, derived_seed
from ppl_models.settings import common_values
from ppl_models.validation import check_positive_int, check_seed


@dataclass
class VAEFit:
    """A trained VAE with its data, its training settings and its history. It
    implements :class:`ppl_models.fits.Fit`.

    A model built on the VAE's stack subclasses it, naming its own model name,
    network module (built as ``network_class(network_config)``, with ``model`` and
    ``guide``), the module's config, the run's config and ``make_elbo``.
    """

    model_name: ClassVar[str] = "vae"
    network_class: ClassVar[type] = VAE
    network_config_class: ClassVar[type] = VAEConfig
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
    ) -> dict[str, float]:
        """ELBO and importance-weighted bound (nats per image) on the first
        ``num_images`` test images (all by default; at most all), with
        ``iwae_samples`` samples (see :func:`evaluate_bounds`, also for
        ``per_image``); the draws come from a seed derived from ``seed``, on
        forked generators, so the caller's random state is as it was.
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
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derived_seed(seed, "evaluation"))
            return evaluate_bounds(
                self.vae, images, iwae_samples, max_elements=max_elements,
                per_image=per_image,
            )  # fmt: skip


def fit_vae(
    dataset: str | ImageData = "digits",
    *,
    data_dir: str | Path | None = None,
    binarize: str = "dynamic",
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    elbo: str = "trace",
    num_particles: int = 1,
    seed: int = 0,
    clip_grad: float | None = None,
    checkpoint_every: int = 1,
    compile: str | None = None,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    train_images: int | None = None,
    test_images: int | None = None,
    checkpoint_path: Path | None = None,
    resume_from: dict[str, Any] | None = None,
    on_epoch_end: Callable[[History], None] | None = None,
    tensorboard: Path | None = None,
    fit_class: type[VAEFit] = VAEFit,
    **config: Any,
) -> VAEFit:
    """Load ``dataset``, build a VAE and train it by amortized SVI.

    :param dataset: ``"mnist"``, ``"digits"`` (offline, 8x8), or data already
        loaded by :func:`~ppl_models.data.load_images` (then ``data_dir``,
        ``binarize``, ``train_images`` and ``test_images`` are not used).
    :param binarize: ``"dynamic"``, ``"threshold"`` or ``"none"`` (grayscale, which
        needs a continuous likelihood such as ``likelihood="continuous_bernoulli"``).
    :param elbo: ``"trace"`` (Monte Carlo KL) or ``"meanfield"`` (analytic KL).
    :param train_images: use only the first this many training images (quick runs).
    :param test_images: use only the first this many test images.
    :param clip_grad: clip the gradients' total norm to this value.
    :param compile: a :func:`torch.compile` mode (``"default"``,
        ``"reduce-overhead"``, ``"max-autotune"``) to trace and compile the ELBO
        with; ``None`` runs it through Pyro every step. Same draws, same loss.
    :param checkpoint_path: write a checkpoint there every ``checkpoint_every``
        epochs, after the last one, and on Ctrl-C.
    :param resume_from: a checkpoint record to continue training from.
    :param on_epoch_end: called with the history after every epoch.
    :param tensorboard: a folder to log each epoch to for TensorBoard (its ELBOs,
        speed, samples and reconstructions; the ``tensorboard`` extra).
    :param fit_class: the fit to make, whose class attributes name the networks,
        their config and the run's config (another model's, built on this stack).
    :param config: :class:`VAEConfig` fields: ``latent_dim``, ``architecture``,
        ``hidden_dims``, ``activation``, ``prior``, ``mixture_components``,
        ``likelihood``, ``base_depth``.
    :returns: a :class:`VAEFit`, whose ``config`` records these settings (for data
        already loaded, its name and binarization, and ``train_images`` and
        ``test_images`` as given).
    """
    check_seed(seed)
    if "hidden_dims" in config:  # before any data loads
        check_hidden_dims(config["hidden_dims"])
    settings = TrainSettings(
        elbo=elbo,
        num_particles=num_particles,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        clip_grad=clip_grad,
        checkpoint_every=checkpoint_every,
        compile=compile,
    )
    device = resolve_device(device)
    # Seeded (and scikit-learn's first import changes Python's ``random``), yet the
    # caller's generators are as they were after the fit.
    with caller_rng_kept([device]):
        if isinstance(dataset, ImageData):
            data = dataset.to(device)
        else:
            data = load_images(
                dataset,
                binarize=binarize,
                data_dir=data_dir,
                device=device,
                limit_train=train_images,
                limit_test=test_images,
            )
        if config.get("likelihood") is None:
            config["likelihood"] = default_likelihood(data.binarize)
        vae_config = fit_class.network_config_class(
            image_shape=data.image_shape, **config
        )
        check_likelihood(vae_config.likelihood, data.binarize)
        # Built before training, so data it cannot record are refused first.
        run_class = fit_class.run_config_class
        run_config = run_class(
            dataset=data.name,
            train_images=train_images,
            test_images=test_images,
            binarize=data.binarize,
            **common_values(vae_config, run_class),
            **common_values(settings, run_class),
        )
        pyro.set_rng_seed(seed)  # fixes the initial weights too
        vae = fit_class.network_class(vae_config).to(device)
        board = (
            None if tensorboard is None else EpochBoard(tensorboard, vae, data, seed)
        )

        def epoch_end(history: History) -> None:
            if board is not None:
                board(history)
            if on_epoch_end is not None:
                on_epoch_end(history)

        try:
            trained = train_vae(
                vae,
                data,
                settings,
                checkpoint_path=checkpoint_path,
                resume_from=resume_from,
                progress=progress,
                on_epoch_end=epoch_end,
                elbo=fit_class.make_elbo(elbo, vae_config, num_particles),
                model_name=fit_class.model_name,
            )
        finally:
            if board is not None:
                board.close()
    return fit_class(
        vae, data, settings, trained.history, run_config, trained.resume_state
    )
