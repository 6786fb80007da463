"""Criticism of a fitted VAE, by running its model and guide under Pyro's handlers.

Every function runs the VAE's own model (``vae.model``) and guide (``vae.guide``),
composed with ``poutine.trace``, ``condition`` and ``replay`` through
:mod:`ppl_models.criticism.replay`: samples are decoded prior draws, reconstructions
replay the guide's latents through the model, the manifold fixes ``z`` on a grid,
and the posterior predictive check draws whole replicated data sets. All run under
``torch.no_grad()`` on the VAE's device; nothing is seeded here (callers seed).
"""

from __future__ import annotations

from pathlib import Path

import torch
from pyro import poutine
from pyro.poutine import Trace

from ppl_models.criticism import CheckResult, replay_guide, replay_latents
from ppl_models.criticism.ppc import exceedance
from ppl_models.data.images import ImageData
from ppl_models.errors import UsageError
from ppl_models.inference.params import local_params
from ppl_models.models.vae.model import VAE
from ppl_models.models.vae.priors import PRIORS
from ppl_models.plots import (
    plot_image_grid,
    plot_latent_scatter,
    plot_pixel_p_values,
    plot_ppc,
    plot_reconstructions,
    save_figure,
)
from ppl_models.validation import check_positive_int

#: Names of the scalar checks of :func:`image_ppc`.
MEAN_INK = "mean ink per image"
SD_INK = "sd of ink per image"
#: Test images shown by :func:`criticize_vae`.
NUM_RECONSTRUCTIONS = 16
MANIFOLD_GRID = 20
MAX_LATENT_POINTS = 5000
#: A pixel's check "fails" when its p-value is outside [EXTREME, 1 - EXTREME].
EXTREME = 0.025


def _pixel_means(trace: Trace) -> torch.Tensor:
    """The mean of the ``x`` site's distribution: pixel probabilities (B, P)."""
    return trace.nodes["x"]["fn"].mean


def _images(vae: VAE, x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """``x`` (N, P) checked against the VAE's image size, on the VAE's device."""
    pixels = vae.config.num_pixels
    if x.dim() != 2 or x.shape[1] != pixels:
        raise UsageError(
            f"{name} must have shape (N, {pixels}) for this VAE's "
            f"{vae.config.image_shape} images, got {tuple(x.shape)}"
        )
    return x.to(vae.device)


def sample_images(vae: VAE, num_images: int) -> torch.Tensor:
    """Images decoded from prior draws, through the model itself.

    :returns: (num_images, P): the mean of ``p(x | z)`` for ``z ~ p(z)``.
    """
    check_positive_int("num_images", num_images)
    with torch.no_grad(), local_params():
        trace = poutine.trace(vae.model).get_trace(None, num_images)
    return _pixel_means(trace)


def reconstruct(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """Decode each image's guide draw ``z ~ q(z | x)`` through the model.

    :param x: images (B, P).
    :returns: (B, P): the mean of ``p(x | z)``.
    """
    x = _images(vae, x)
    with torch.no_grad(), local_params():
        trace = replay_guide(
            vae.model, vae.guide, model_args=(None, x.shape[0]), guide_args=(x,)
        )
    return _pixel_means(trace)


def latent_manifold(
    vae: VAE, grid_size: int = 20, quantiles: tuple[float, float] = (0.05, 0.95)
) -> torch.Tensor:
    """Decode a grid of 2-d latent codes evenly spaced in standard Normal quantiles.

    Row-major, ``z1`` increasing to the right and ``z2`` decreasing downward, so
    ``plot_image_grid(images, shape, ncols=grid_size)`` draws the manifold the
    classic way. The grid is in the quantiles of ``Normal(0, 1)``, the default
    prior; for a mixture prior it is the same grid, not the mixture's quantiles.

    :returns: (grid_size * grid_size, P): the mean of ``p(x | z)`` at each code.
    :raises UsageError: unless ``latent_dim == 2``, or for bad grid arguments.
    """
    if vae.config.latent_dim != 2:
        raise UsageError(
            "latent_manifold draws a 2-d latent space: it needs latent_dim == 2, "
            f"got latent_dim = {vae.config.latent_dim}"
        )
    check_positive_int("grid_size", grid_size)
    low, high = (float(q) for q in quantiles)
    if not 0.0 < low < high < 1.0:
        raise UsageError(
            f"quantiles must satisfy 0 < low < high < 1, got {tuple(quantiles)!r}"
        )
    device = vae.device
    with torch.no_grad(), local_params():
        levels = torch.linspace(low, high, grid_size, device=device)
        standard = torch.distributions.Normal(
            torch.zeros((), device=device), torch.ones((), device=device)
        )
        values = standard.icdf(levels)
        z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")
        z_grid = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)
        trace = replay_latents(vae.model, {"z": z_grid}, None, len(z_grid))
    return _pixel_means(trace)


def encoded_means(vae: VAE, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The guide's posterior means of ``z`` for images ``x`` (N, P): (N, L)."""
    x = _images(vae, x)
    check_positive_int("batch_size", batch_size)
    with torch.no_grad():
        if x.shape[0] == 0:
            return torch.empty(0, vae.config.latent_dim, device=vae.device)
        return torch.cat([vae.encode(batch)[0] for batch in x.split(batch_size)])


def _statistics(batches) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and sd over images of each image's ink, and the per-pixel mean (P,),
    accumulated over ``batches`` of one data set (observed or replicated alike, so
    that equal data give bit-equal statistics).
    """
    inks, pixel_sum, count = [], None, 0
    for batch in batches:
        inks.append(batch.mean(-1))
        total = batch.sum(0)
        pixel_sum = total if pixel_sum is None else pixel_sum + total
        count += batch.shape[0]
    ink = torch.cat(inks)
    return ink.mean(), ink.std(), pixel_sum / count


def image_ppc(
    vae: VAE, x: torch.Tensor, num_replicates: int = 100, batch_size: int = 500
) -> tuple[dict[str, CheckResult], torch.Tensor]:
    """Posterior predictive check of observed images ``x`` (M, P).

    Each replicated data set draws, for every image, ``z ~ q(z | x)`` and then
    ``x_rep ~ p(x | z)`` (a sample, not the mean). Its statistics are accumulated
    batch by batch, so no replicate is held whole: the mean and the sd over images
    of each image's mean pixel value ("ink"), and the mean of each pixel.

    :returns: ``({name: CheckResult}, pixel_p_values)`` with p-values
        (mid-p-values, see :func:`~ppl_models.criticism.ppc.exceedance`); the checks'
        replicated values (num_replicates,) and the per-pixel p-values (P,) are on
        the CPU.
    :raises UsageError: for fewer than 2 images or bad counts.
    """
    x = _images(vae, x)
    check_positive_int("num_replicates", num_replicates)
    check_positive_int("batch_size", batch_size)
    if x.shape[0] < 2:
        raise UsageError(
            f"image_ppc needs at least 2 images (an sd over images), got {x.shape[0]}"
        )
    device = vae.device
    with torch.no_grad(), local_params():
        obs_mean, obs_sd, obs_pixels = _statistics(x.split(batch_size))
        rep_mean = torch.empty(num_replicates, device=device)
        rep_sd = torch.empty(num_replicates, device=device)
        pixel_hits = torch.zeros(x.shape[1], device=device)
        for s in range(num_replicates):
            replicates = (
                replay_guide(
                    vae.model, vae.guide, (None, batch.shape[0]), (batch,)
                ).nodes["x"]["value"]
                for batch in x.split(batch_size)
            )
            rep_mean[s], rep_sd[s], pixels = _statistics(replicates)
            pixel_hits += exceedance(pixels, obs_pixels).to(pixel_hits.dtype)
    checks = {
        name: CheckResult(
            name=name,
            observed=float(observed),
            replicated=replicated.cpu(),
            p_value=float(exceedance(replicated, observed).mean()),
        )
        for name, observed, replicated in (
            (MEAN_INK, obs_mean, rep_mean),
            (SD_INK, obs_sd, rep_sd),
        )
    }
    return checks, (pixel_hits / num_replicates).cpu()


def criticize_vae(
    vae: VAE,
    data: ImageData,
    out_dir: Path,
    *,
    num_images: int = 100,
    ppc_images: int = 1000,
    num_replicates: int = 100,
) -> dict:
    """Draw the VAE's criticism figures into ``out_dir`` and summarize its checks.

    Writes ``samples.png``, ``reconstructions.png``, for a 2-d latent space
    ``manifold.png`` and ``latent_space.png``, then ``ppc.png`` and
    ``ppc_pixels.png``, from the test images (``ppc_images`` of them in the check).

    :returns: ``{"ppc": {name: {"observed", "p_value"}},
        "ppc_pixel_extreme_fraction": float, "figures": [file names]}`` for
        ``summary.json``; the extreme fraction counts pixels with p-value below
        0.025 or above 0.975.
    """
    check_positive_int("num_images", num_images)
    check_positive_int("ppc_images", ppc_images)
    test = _images(vae, data.test, "data.test")
    if test.shape[0] < 2:
        raise UsageError(
            f"criticize_vae needs at least 2 test images, got {test.shape[0]}"
        )
    shape, config = data.image_shape, vae.config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[str] = []

    def save(fig, name: str) -> None:
        save_figure(fig, out_dir / name)
        figures.append(name)

    about = f"latent_dim {config.latent_dim}, {config.prior} prior"
    save(
        plot_image_grid(
            sample_images(vae, num_images),
            shape,
            title=f"Images decoded from prior draws ({about})",
        ),
        "samples.png",
    )
    originals = test[:NUM_RECONSTRUCTIONS]
    save(
        plot_reconstructions(
            originals,
            reconstruct(vae, originals),
            shape,
            title="Test images and their reconstructions (z ~ q(z | x), mean image)",
        ),
        "reconstructions.png",
    )
    if config.latent_dim == 2 and config.prior in PRIORS:  # a 2-d continuous code
        save(
            plot_image_grid(
                latent_manifold(vae, MANIFOLD_GRID),
                shape,
                ncols=MANIFOLD_GRID,
                title="Learned manifold: z on a grid of prior quantiles (5%-95%)",
                xlabel="z1: 5% (left) to 95% (right) prior quantile",
                ylabel="z2: 5% (bottom) to 95% (top)",
            ),
            "manifold.png",
        )
        shown = test[:MAX_LATENT_POINTS]
        save(
            plot_latent_scatter(
                encoded_means(vae, shown),
                data.test_labels[: len(shown)],
                title=f"Posterior means of {len(shown)} test images",
            ),
            "latent_space.png",
        )
    checked = test[:ppc_images]
    checks, pixel_p = image_ppc(vae, checked, num_replicates)
    save(
        plot_ppc(
            checks,
            title=f"Posterior predictive checks: {len(checked)} test images, "
            f"{num_replicates} replicates",
        ),
        "ppc.png",
    )
    save(
        plot_pixel_p_values(
            pixel_p, shape, title="Per-pixel check of the mean pixel value"
        ),
        "ppc_pixels.png",
    )
    extreme = (pixel_p < EXTREME) | (pixel_p > 1.0 - EXTREME)
    return {
        "ppc": {name: check.as_dict() for name, check in checks.items()},
        "ppc_pixel_extreme_fraction": float(extreme.float().mean()),
        "figures": figures,
    }
