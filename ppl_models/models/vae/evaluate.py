"""Held-out scores of a VAE: the ELBO and the importance-weighted bound, in nats.

Both come from importance weights ``log w_k = log p(x, z_k) - log q(z_k | x)`` with
``z_k ~ q(z | x)``, computed by tracing the guide and replaying it through the model
inside a plate over samples, so K samples of a batch are one vectorized pass::

    ELBO(x) = mean_k log w_k            IWAE_K(x) = log mean_k w_k  >= ELBO(x)

Work is cut into passes of images and samples that allocate at most
``max_elements`` numbers in all (:func:`pass_elements` counts what one image and
one sample cost, from the VAE's config: the networks' activations, ``z``, the
likelihood's and the densities' temporaries), and the passes' results are reduced
as they come, so memory is bounded whatever K is; if the device still runs out of
memory (CUDA's error or the CPU allocator's), the passes are halved until they fit.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

from ppl_models import distributed
from ppl_models.errors import ResourceError, UsageError
from ppl_models.inference.memory import is_out_of_memory
from ppl_models.inference.params import local_params
from ppl_models.models.vae.model import VAE, VAEConfig
from ppl_models.seeding import derived_seed
from ppl_models.validation import check_positive_int

#: what evaluation sums over the images: the bounds, the ELBO's parts, and the
#: squares of the per-image IWAE bounds (for its standard error)
SUMS = ("elbo", "iwae", "distortion", "rate", "iwae_squared")

#: default bound on the numbers one pass allocates (64 MiB of float32)
MAX_ELEMENTS = 2**24

#: temporaries of ``log p(x | z)`` per pixel, as counted in torch's log_prob (the
#: logits, the broadcast data, the elementwise terms), with a margin
LIKELIHOOD_TEMPORARIES = {"bernoulli": 4, "continuous_bernoulli": 12, "normal": 8}


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


def pass_elements(config: VAEConfig) -> tuple[int, int]:
    """Numbers (float32 elements) that one evaluation pass allocates, as
    ``(per_draw, per_image)``: a pass over B images and k samples allocates at most
    ``B * k * per_draw + B * per_image``.

    Each draw ``z`` (image x sample) costs the decoder's activations (every layer's
    output and its activation's: the hidden widths and the pixels), the
    likelihood's temporaries over the pixels, ``z`` with the latent densities'
    terms, and an IAF guide's steps; the encoder runs once per image. Every stage
    is counted as if all were alive at once, so the count bounds the peak from
    above.
    """
    # numbers in one code z: latent_dim, or what the config says (a categorical
    # code has a number per latent and class)
    pixels, latent = config.num_pixels, getattr(config, "code_size", config.latent_dim)
    height, width = config.image_shape
    # z, its noise, and the Normal log-densities of q and p with their temporaries
    latent_terms = 8 * latent
    if config.prior == "mixture":
        latent_terms += 4 * config.mixture_components * latent  # every component
    if config.architecture == "conv":
        b, small = config.base_depth, (height // 4) * (width // 4)
        # each layer's output, its leaky ReLU's and a convolution's workspace
        decoder = 3 * (4 * b * small + 3 * b * pixels // 4 + 2 * b * pixels) + pixels
        encoder = 3 * (b * pixels + 3 * b * pixels // 4 + 4 * b * small) + pixels
    else:
        hidden = sum(config.hidden_dims)
        decoder = 2 * (hidden + pixels)
        encoder = 2 * (hidden + 2 * latent) + pixels
    if getattr(config, "guide", "normal") == "iaf":
        # each step's network on the code and the encoder's features, broadcast
        # to every draw: its input, hidden layer and activation, and the shift,
        # the gate and the log-determinant over the code
        features = 4 * latent if config.architecture == "conv" else (
            config.hidden_dims[-1] if config.hidden_dims else pixels)  # fmt: skip
        latent_terms += config.flows * (3 * (latent + features) + 8 * latent)
    likelihood = LIKELIHOOD_TEMPORARIES[config.likelihood] * pixels
    results = 16  # the log-weights' parts and their sums, per draw
    per_draw = decoder + likelihood + latent_terms + results
    return per_draw, encoder + 4 * latent


#: images per block: the unit of work whose draws are seeded on their own, so that
#: the numbers do not depend on which process evaluates which block
BLOCK = 500


def evaluate_bounds(
    vae: VAE,
    images: torch.Tensor,
    num_samples: int = 1,
    *,
    max_elements: int = MAX_ELEMENTS,
    shard: bool = False,
    per_image: bool = False,
) -> dict[str, float]:
    """Mean ELBO and importance-weighted bound per image, in nats, and the ELBO's
    two parts from the same draws: ``distortion`` = -E_q log p(x | z) and ``rate`` =
    E_q [log q(z | x) - log p(z)] (a Monte Carlo estimate of the KL divergence), so
    that ``elbo = -(distortion + rate)``.

    The images are taken in blocks of :data:`BLOCK`, each with draws seeded from
    one draw of the caller's generator and the block's index.

    :param images: (M, P) on the VAE's device.
    :param num_samples: K importance samples per image.
    :param max_elements: at most this many numbers are allocated by one pass (see
        :func:`pass_elements`); memory does not grow with K or M.
    :param shard: in a process group of several ranks, evaluate only this rank's
        blocks (every rank must call it) and sum the results over the ranks: the
        same numbers as one process, to float precision.
    :returns: ``{"elbo", "iwae", "distortion", "rate", "iwae_se"}``: with K = 1
        the ELBO and the IWAE bound coincide; ``iwae_se`` is the standard error of
        the mean IWAE bound over the images (their spread over sqrt(M); NaN for
        one image). With ``per_image``, also ``iwae_per_image``: each image's
        bound, (M,) on the CPU, for comparisons paired image by image (one
        process only).
    """
    check_positive_int("num_samples", num_samples)
    if per_image and shard:
        raise UsageError("per_image bounds are for one process: leave out shard")
    config = getattr(vae, "config", None)
    # A stand-in without a config (in tests) is counted by its decoder's outputs.
    cost = pass_elements(config) if config is not None else (images.shape[-1], 0)
    world = distributed.current() if shard else distributed.World()
    base = int(torch.randint(2**62, ()))  # from the caller's seeded generator
    devices = [images.device] if images.device.type == "cuda" else []
    sums = images.new_zeros(len(SUMS))
    budget = max_elements
    each: list[torch.Tensor] | None = [] if per_image else None
    for index in range(world.rank, -(-images.shape[0] // BLOCK), world.size):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derived_seed(base, f"block {index}"))
            block = images[index * BLOCK : (index + 1) * BLOCK]
            block_sums, budget = _block_sums(
                vae, block, num_samples, cost, budget, each
            )
        sums += block_sums
    if world.size > 1:
        distributed.sum_across(sums)
    # One host read for all the sums.
    count = images.shape[0]
    means = {k: total / count for k, total in zip(SUMS, sums.tolist(), strict=True)}
    spread = max(means.pop("iwae_squared") - means["iwae"] ** 2, 0.0)
    se = math.sqrt(spread / (count - 1)) if count > 1 else math.nan
    if each is None:
        return {**means, "iwae_se": se}
    return {**means, "iwae_se": se, "iwae_per_image": torch.cat(each).cpu()}


def _block_sums(
    vae: VAE,
    images: torch.Tensor,
    num_samples: int,
    cost: tuple[int, int],
    budget: int,
    each: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, int]:
    """The :data:`SUMS` over ``images`` (B, P), in passes within ``budget`` numbers
    (halved on out-of-memory); the sums and the budget that fitted. Each image's
    IWAE bound is appended to ``each`` where it is given."""
    per_draw, per_image = cost
    sums = images.new_zeros(len(SUMS))
    start = 0
    while start < images.shape[0]:
        # Samples first, up to K for one image; then as many images as fit.
        samples_per_pass = min(num_samples, max(1, (budget - per_image) // per_draw))
        per_pass_image = samples_per_pass * per_draw + per_image
        batch = images[start : start + max(1, budget // per_pass_image)]
        try:
            batch_sums = _batch_sums(vae, batch, num_samples, samples_per_pass)
        except (RuntimeError, MemoryError) as error:
            if not is_out_of_memory(error):
                raise
            # Out of memory: free what the failed pass held and go on in halves.
            if budget <= per_draw + per_image:
                raise ResourceError(
                    "out of memory evaluating a single image and sample"
                ) from None
            budget //= 2
            if images.device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        sums += torch.stack([batch_sums[k] for k in SUMS])
        if each is not None:
            each.append(batch_sums["iwae_each"])
        start += batch.shape[0]
    return sums, budget


def _batch_sums(
    vae: VAE, batch: torch.Tensor, num_samples: int, samples_per_pass: int
) -> dict[str, torch.Tensor]:
    """The :data:`SUMS` over the images of ``batch`` (B, P), with the K draws
    taken ``samples_per_pass`` at a time. Each pass is reduced over its samples at
    once (per image: the sums and the log-sum-exp of its log-weights), so no more
    than a few numbers per pass outlive it; those are then combined exactly.
    """
    passes: dict[str, list[torch.Tensor]] = {
        "log_w": [], "lse": [], "log_lik": [], "rate": []
    }  # fmt: skip
    for k in range(0, num_samples, samples_per_pass):
        parts = log_weight_parts(vae, batch, min(samples_per_pass, num_samples - k))
        log_w = parts["log_lik"] + parts["log_prior"] - parts["log_q"]  # (k, B)
        passes["log_w"].append(log_w.sum(0))
        passes["lse"].append(log_w.logsumexp(0))
        passes["log_lik"].append(parts["log_lik"].sum(0))
        passes["rate"].append((parts["log_q"] - parts["log_prior"]).sum(0))
        del parts, log_w  # the next pass's peak does not hold this one's
    # (passes, B) each; summed per image over the passes, then over the images
    per_image = {key: torch.stack(values) for key, values in passes.items()}
    iwae = per_image["lse"].logsumexp(0) - math.log(num_samples)
    return {
        "elbo": per_image["log_w"].sum(0).sum() / num_samples,
        "iwae": iwae.sum(),
        "iwae_squared": iwae.square().sum(),
        "iwae_each": iwae,
        "distortion": -per_image["log_lik"].sum(0).sum() / num_samples,
        "rate": per_image["rate"].sum(0).sum() / num_samples,
    }


def evaluate_elbo(
    vae: VAE,
    images: torch.Tensor,
    *,
    max_elements: int = MAX_ELEMENTS,
    shard: bool = False,
) -> float:
    """Mean single-sample ELBO per image (nats) over ``images`` (M, P); ``shard``
    as for :func:`evaluate_bounds`."""
    return evaluate_bounds(vae, images, 1, max_elements=max_elements, shard=shard)[
        "elbo"
    ]
