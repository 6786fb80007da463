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
from ppl_models.models.vae.model import VAE
from ppl_models.validation import check_positive_int

#: default bound on decoder outputs held at once (64 MiB of float32 logits)
MAX_ELEMENTS = 2**24


def log_weights(vae: VAE, x: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
    """Importance log-weights of ``num_samples`` guide draws for each image.

    :param x: images (B, P).
    :returns: (num_samples, B).
    """
    with torch.no_grad(), pyro.plate("samples", num_samples, dim=-2):
        guide_trace = poutine.trace(vae.guide).get_trace(x)
        replayed = poutine.replay(vae.model, trace=guide_trace)
        model_trace = poutine.trace(replayed).get_trace(x)
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
    log_p = model_trace.nodes["x"]["log_prob"] + model_trace.nodes["z"]["log_prob"]
    return log_p - guide_trace.nodes["z"]["log_prob"]


def evaluate_bounds(
    vae: VAE,
    images: torch.Tensor,
    num_samples: int = 1,
    *,
    max_elements: int = MAX_ELEMENTS,
) -> dict[str, float]:
    """Mean ELBO and importance-weighted bound per image, in nats.

    :param images: (M, P) on the VAE's device.
    :param num_samples: K importance samples per image.
    :returns: ``{"elbo": ..., "iwae": ...}``; with K = 1 the two coincide.
    """
    check_positive_int("num_samples", num_samples)
    num_pixels = images.shape[-1]
    budget = max_elements
    elbo_sum = images.new_zeros(())
    iwae_sum = images.new_zeros(())
    start = 0
    while start < images.shape[0]:
        per_pass = max(1, budget // num_pixels)  # images x samples per pass
        samples_per_pass = min(num_samples, per_pass)
        batch = images[start : start + max(1, per_pass // samples_per_pass)]
        try:
            log_w = torch.cat(  # (K, B)
                [
                    log_weights(vae, batch, min(samples_per_pass, num_samples - k))
                    for k in range(0, num_samples, samples_per_pass)
                ]
            )
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
        elbo_sum += log_w.mean(0).sum()
        iwae_sum += (log_w.logsumexp(0) - math.log(num_samples)).sum()
        start += batch.shape[0]
    count = images.shape[0]
    return {"elbo": float(elbo_sum) / count, "iwae": float(iwae_sum) / count}


def evaluate_elbo(
    vae: VAE, images: torch.Tensor, *, max_elements: int = MAX_ELEMENTS
) -> float:
    """Mean single-sample ELBO per image (nats) over ``images`` (M, P)."""
    return evaluate_bounds(vae, images, 1, max_elements=max_elements)["elbo"]
