"""A classifier's criticism on held-out points: the posterior predictive, accuracy,
log predictive density and calibration (a reliability diagram's bins)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

#: draws of the latents, site -> (S, ...)
Draws = dict[str, torch.Tensor]


def predictive_log_probs(
    log_probs: Callable[[Draws], torch.Tensor], draws: Draws, chunk: int = 100
) -> torch.Tensor:
    """``log (1/S) sum_s p(y = k | x_n, draw s)``, (N, K): the posterior predictive.

    :param log_probs: a chunk of draws (C, ...) -> ``log p(y = k | x_n, draw)``,
        (C, N, K); called ``chunk`` draws at a time to bound the memory.
    :param draws: the S draws of each latent site, site -> (S, ...).
    """
    num_draws = len(next(iter(draws.values())))
    parts = [
        log_probs(
            {site: d[start : start + chunk] for site, d in draws.items()}
        ).logsumexp(dim=0)
        for start in range(0, num_draws, chunk)
    ]
    return torch.stack(parts).logsumexp(dim=0) - math.log(num_draws)


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's bins of equal width on [0, 1], each (bins,)."""

    #: points whose confidence (top predictive probability) falls in the bin
    count: torch.Tensor
    #: their mean confidence (NaN in an empty bin)
    confidence: torch.Tensor
    #: the share of them whose top class is right (NaN in an empty bin)
    accuracy: torch.Tensor


def held_out_checks(
    log_p: torch.Tensor, y: torch.Tensor, bins: int = 10
) -> tuple[dict[str, float], Reliability]:
    """Held-out numbers of the predictive ``log_p`` (N, K) at labels ``y`` (N,):
    ``heldout_accuracy``, ``heldout_log_density`` (per point) and
    ``heldout_calibration_error`` (the expected calibration error: the bins'
    ``|confidence - accuracy|`` weighted by their counts), and the bins.
    """
    confidence, guess = log_p.exp().max(dim=-1)
    right = (guess == y).to(confidence.dtype)
    which = (confidence * bins).long().clamp(max=bins - 1)
    count = torch.bincount(which, minlength=bins)
    sums = [torch.bincount(which, v, minlength=bins) for v in (confidence, right)]
    numbers = {
        "heldout_accuracy": float(right.mean()),
        "heldout_log_density": float(log_p.gather(1, y[:, None]).mean()),
        "heldout_calibration_error": float((sums[0] - sums[1]).abs().sum() / len(y)),
    }
    mean_confidence, accuracy = (s.cpu() / count.cpu() for s in sums)
    return numbers, Reliability(count.cpu(), mean_confidence, accuracy)
