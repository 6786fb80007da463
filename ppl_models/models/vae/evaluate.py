"""Held-out scores of a VAE: the ELBO and the importance-weighted bound, in nats.

Both come from importance weights ``log w_k = log p(x, z_k) - log q(z_k | x)`` with
``z_k ~ q(z | x)``, computed by tracing the guide and replaying it through the model
inside a plate over samples, so K samples of a batch are one vectorized pass::

    ELBO(x) = mean_k log w_k            IWAE_K(x) = log mean_k w_k  >= ELBO(x)

Work is cut into chunks of images and samples whose decoder output stays under
``max_elements`` numbers, so memory is bounded whatever K is; if the device still
runs out of memory, the chunks are halved until they fit.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

from ppl_models.errors import ResourceError
from ppl_models.inference.params import local_params
from ppl_models.models.vae.model import VAE
from ppl_models.validation import check_positive_int

#: default bound on decoder outputs held at once (64 MiB of float32 logits)
MAX_ELEMENTS = 2**24


def log_weight_parts(
    vae: VAE, x: torch.Tensor, num_samples: int = 1
) -> dict[str, torch.Tensor]:
    """The terms of the importance log-weights of ``num_samples`` guide draws
    ``z_k ~ q(z | x)`` for each image: ``log_lik`` = log p(x | z_k), ``log_prior`` =
    log p(z_k) and ``log_q`` = log q(z_k | x).

    :param x: images (B, P).
    :returns: three tensors of shape (num_samples, B).
    """
    with (
        torch.no_grad(),
        pyro.plate("samples", num_samples, dim=-2),
        local_params(),
    ):
        guide_trace = poutine.trace(vae.guide).get_trace(x)
        replayed = poutine.replay(vae.model, trace=guide_trace)
        model_trace = poutine.trace(replayed).get_trace(x)
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
    return {
        "log_lik": model_trace.nodes["x"]["log_prob"],
        "log_prior": model_trace.nodes["z"]["log_prob"],
        "log_q": guide_trace.nodes["z"]["log_prob"],
    }


def log_weights(vae: VAE, x: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
    """Importance log-weights of ``num_samples`` guide draws for each image.

    :param x: images (B, P).
    :returns: (num_samples, B).
    """
    parts = log_weight_parts(vae, x, num_samples)
    return parts["log_lik"] + parts["log_prior"] - parts["log_q"]


def evaluate_bounds(
    vae: VAE,
    images: torch.Tensor,
    num_samples: int = 1,
    *,
    max_elements: int = MAX_ELEMENTS,
) -> dict[str, float]:
    """Mean ELBO and importance-weighted bound per image, in nats, and the ELBO's
    two parts from the same draws: ``distortion`` = -E_q log p(x | z) and ``rate`` =
    E_q [log q(z | x) - log p(z)] (a Monte Carlo estimate of the KL divergence), so
    that ``elbo = -(distortion + rate)``.

    :param images: (M, P) on the VAE's device.
    :param num_samples: K importance samples per image.
    :returns: ``{"elbo", "iwae", "distortion", "rate"}``; with K = 1 the ELBO and
        the IWAE bound coincide.
    """
    check_positive_int("num_samples", num_samples)
    num_pixels = images.shape[-1]
    budget = max_elements
    sums = {key: images.new_zeros(()) for key in ("elbo", "iwae", "distortion", "rate")}
    start = 0
    while start < images.shape[0]:
        per_pass = max(1, budget // num_pixels)  # images x samples per pass
        samples_per_pass = min(num_samples, per_pass)
        batch = images[start : start + max(1, per_pass // samples_per_pass)]
        try:
            chunks = [
                log_weight_parts(vae, batch, min(samples_per_pass, num_samples - k))
                for k in range(0, num_samples, samples_per_pass)
            ]
            parts = {key: torch.cat([c[key] for c in chunks]) for key in chunks[0]}
            log_w = parts["log_lik"] + parts["log_prior"] - parts["log_q"]  # (K, B)
        except torch.OutOfMemoryError:
            # Out of memory: free what the failed pass held and go on in halves.
            if budget <= num_pixels:
                raise ResourceError(
                    "out of memory evaluating a single image and sample"
                ) from None
            budget //= 2
            if images.device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        sums["elbo"] += log_w.mean(0).sum()
        sums["iwae"] += (log_w.logsumexp(0) - math.log(num_samples)).sum()
        sums["distortion"] -= parts["log_lik"].mean(0).sum()
        sums["rate"] += (parts["log_q"] - parts["log_prior"]).mean(0).sum()
        start += batch.shape[0]
    # One host read for all four sums.
    totals = torch.stack(list(sums.values())).tolist()
    count = images.shape[0]
    return {key: total / count for key, total in zip(sums, totals, strict=True)}


def evaluate_elbo(
    vae: VAE, images: torch.Tensor, *, max_elements: int = MAX_ELEMENTS
) -> float:
    """Mean single-sample ELBO per image (nats) over ``images`` (M, P)."""
    return evaluate_bounds(vae, images, 1, max_elements=max_elements)["elbo"]
