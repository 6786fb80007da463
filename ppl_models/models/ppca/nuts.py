"""The gold standard for PPCA's posterior over ``w``: NUTS with ``z`` integrated out.

Given ``mu`` and sigma, the collapsed model ``x_n ~ Normal(mu, w wᵀ + sigma² I)``
has the same posterior over ``w`` as the full one, and only D K latents, so
``pyro.infer.MCMC`` with NUTS samples it in seconds. Its draws are the yardstick for
the mean-field guide's means and standard deviations and for the MAP points.

The posterior is invariant to ``w -> w R`` for any orthogonal R (sign flips for
K = 1), so each draw is first rotated onto a reference (the fit's ``w``) by
orthogonal Procrustes before means and standard deviations are taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ppl_models.fullbatch.nuts import nuts_draws
from ppl_models.models.ppca.model import PPCA
from ppl_models.validation import check_positive_int


def align(draws: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each draw rotated (or reflected) onto ``reference``: ``W_s R_s`` with the
    orthogonal ``R_s`` that minimises ``|W_s R_s - reference|``.

    :param draws: (S, D, K). :param reference: (D, K).
    :returns: (S, D, K).
    """
    u, _, vh = torch.linalg.svd(draws.transpose(-1, -2) @ reference)
    return draws @ (u @ vh)


@dataclass(frozen=True)
class NutsPosterior:
    """Draws of ``w`` from NUTS, aligned to a reference, and their diagnostics."""

    #: (S, D, K), rotated onto the reference
    draws: torch.Tensor
    #: the largest split R-hat and the smallest effective sample size over entries
    r_hat: float
    n_eff: float

    @property
    def mean(self) -> torch.Tensor:
        """The posterior mean of ``w``, (D, K)."""
        return self.draws.mean(dim=0)

    @property
    def sd(self) -> torch.Tensor:
        """The posterior standard deviations of ``w``, (D, K)."""
        return self.draws.std(dim=0)


def sample_w(
    x: torch.Tensor,
    model: PPCA,
    reference: torch.Tensor,
    *,
    num_samples: int,
    warmup_steps: int,
) -> NutsPosterior:
    """Sample ``p(w | x, mu, sigma)`` with NUTS, ``mu`` and sigma taken from
    ``model`` (the fit's), ``z`` integrated out.

    Draws from the caller's generators (seed them first). One chain, started at
    ``reference``, in float64 on the CPU: the few latents make a GPU no faster.

    :param x: observations, (data_dim, N).
    :param model: the fitted model, whose prior, mean and noise scale are used.
    :param reference: (D, K), the start and the orientation to align draws to.
    """
    check_positive_int("nuts_samples", num_samples)
    check_positive_int("nuts_warmup", warmup_steps)
    collapsed = PPCA(
        model.data_dim,
        model.latent_dim,
        float(model.noise_scale.detach()),
        float(model.prior_w_scale),
        collapsed=True,
    ).double()
    centred = (x - model.mu.detach()).double().cpu()
    start = reference.detach().double().cpu()
    draws, diagnostics = nuts_draws(
        collapsed,
        (centred,),
        {"w": start},
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        jit_compile=False,  # as it always ran: the reference's draws unchanged
    )
    return NutsPosterior(
        draws=align(draws["w"], start).to(reference.dtype),
        r_hat=diagnostics["nuts_r_hat_max"],
        n_eff=diagnostics["nuts_n_eff_min"],
    )


def compare(
    posterior: NutsPosterior, mean: torch.Tensor, sd: torch.Tensor | None
) -> dict[str, Any]:
    """A fit's ``w`` (and, for a distribution, its sds) against NUTS, the draws
    first aligned to the fit's ``w``.

    :param mean: the fit's point or posterior mean, (D, K).
    :param sd: the fit's posterior sds, (D, K); None for a point estimate.
    :returns: ``mean_diff_in_sds`` ((fit - NUTS mean) / NUTS sd, per entry) and its
        median absolute value, ``sd_ratio`` (fit sd / NUTS sd) and its median for a
        distribution, NUTS's mean and sd, and its diagnostics.
    """
    mean = mean.detach().cpu()
    draws = align(posterior.draws.cpu().double(), mean.double()).to(mean.dtype)
    posterior = NutsPosterior(draws, posterior.r_hat, posterior.n_eff)
    nuts_sd = posterior.sd
    diff = (mean - posterior.mean) / nuts_sd
    out: dict[str, Any] = {
        "median_abs_mean_diff_in_sds": float(diff.abs().flatten().quantile(0.5)),
        "mean_diff_in_sds": diff.tolist(),
    }
    if sd is not None:
        ratio = sd.detach().cpu() / nuts_sd
        out["median_sd_ratio"] = float(ratio.flatten().quantile(0.5))
        out["sd_ratio"] = ratio.tolist()
    return {
        **out,
        "nuts_mean": posterior.mean.tolist(),
        "nuts_sd": nuts_sd.tolist(),
        "nuts_samples": posterior.draws.shape[0],
        "nuts_r_hat_max": posterior.r_hat,
        "nuts_n_eff_min": posterior.n_eff,
    }
