"""Logistic regression's criticism: held-out accuracy and log predictive density, a
reliability diagram, and the fit's coefficients held against NUTS draws."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pyro
import torch
from pyro.infer import MCMC, NUTS, Predictive

from ppl_models.models.logreg.model import LogReg
from ppl_models.plots import new_figure
from ppl_models.seeding import caller_rng_kept, derived_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ppl_models.fullbatch import FullBatchFit

Draws = dict[str, torch.Tensor]  # "w": (S, D, C), "b": (S, C)


def guide_draws(fit: FullBatchFit, num_samples: int) -> Draws:
    """``num_samples`` draws of w and b from the fit's guide."""
    sites = ("w", "b")
    predictive = Predictive(
        fit.guide, num_samples=num_samples, return_sites=sites, parallel=True
    )
    with torch.no_grad():
        draws = predictive(*fit.data)
    return {site: draws[site].detach() for site in sites}


def nuts_draws(fit: FullBatchFit) -> tuple[Draws, dict[str, float]]:
    """NUTS draws of w and b given the fit's train split, and their largest split
    R-hat and smallest effective sample size.

    One chain in float64 on the CPU (a GPU is no faster for so few coefficients),
    the potential JIT-compiled, started at the guide's median; seeded from the
    run's seed, apart from the caller's generators.
    """
    model = LogReg(fit.model.num_classes, float(fit.model.prior_scale)).double()
    x, y = fit.data[0].double().cpu(), fit.data[1].cpu()
    start = {
        k: v.detach().double().cpu() for k, v in fit.guide.median(*fit.data).items()
    }
    kernel = NUTS(model, jit_compile=True, ignore_jit_warnings=True)
    with caller_rng_kept([fit.device]):
        pyro.set_rng_seed(derived_seed(fit.config.seed, "nuts"))
        mcmc = MCMC(
            kernel,
            num_samples=fit.config.nuts_samples,
            warmup_steps=fit.config.nuts_warmup,
            initial_params={site: start[site] for site in ("w", "b")},
            disable_progbar=True,
        )
        mcmc.run(x, y)
    draws = {k: v.float().to(fit.device) for k, v in mcmc.get_samples().items()}
    diagnostics = mcmc.diagnostics()
    return draws, {
        "nuts_r_hat_max": max(float(diagnostics[k]["r_hat"].max()) for k in draws),
        "nuts_n_eff_min": min(float(diagnostics[k]["n_eff"].min()) for k in draws),
    }


def predictive_log_probs(model: LogReg, x: torch.Tensor, draws: Draws) -> torch.Tensor:
    """``log mean_s p(y = k | x_n, w_s, b_s)``, (N, K): the posterior predictive."""
    parts = [
        torch.log_softmax(model.logits(x, w, b), dim=-1).logsumexp(dim=0)
        for w, b in zip(draws["w"].split(100), draws["b"].split(100), strict=True)
    ]
    return torch.stack(parts).logsumexp(dim=0) - math.log(len(draws["w"]))


def heldout(log_p: torch.Tensor, y: torch.Tensor, bins: int = 10) -> tuple:
    """Held-out numbers and a reliability diagram of the predictive ``log_p`` (N, K)
    at labels ``y`` (N,): the confidence (top probability) of the points in each of
    ``bins`` equal bins on [0, 1] against the share of them that is right.
    """
    confidence, guess = log_p.exp().max(dim=-1)
    right = (guess == y).float()
    which = (confidence * bins).long().clamp(max=bins - 1)
    count = torch.bincount(which, minlength=bins)
    sums = [torch.bincount(which, v, minlength=bins) for v in (confidence, right)]
    numbers = {
        "heldout_accuracy": float(right.mean()),
        "heldout_log_density": float(log_p.gather(1, y[:, None]).mean()),
        # the expected calibration error: |confidence - accuracy|, bins weighted
        "heldout_calibration_error": float((sums[0] - sums[1]).abs().sum() / len(y)),
    }
    fig, (ax,) = new_figure(size=4.5)
    full = count > 0
    conf, acc = (s[full].cpu() / count[full].cpu() for s in sums)
    ax.plot([0, 1], [0, 1], "k:", label="calibrated")
    ax.plot(conf, acc, "o-", label="held-out points")
    for c, a, n in zip(conf.tolist(), acc.tolist(), count[full].tolist(), strict=True):
        ax.annotate(str(n), (c, a), textcoords="offset points", xytext=(4, -10))
    ax.set(xlabel="confidence (top predictive probability)", ylabel="accuracy")
    ax.legend(loc="upper left")
    return numbers, fig


def against_nuts(fit_draws: Draws, nuts: Draws, point: bool) -> tuple:
    """Per coefficient (w's entries, then b's): the difference of the means in NUTS
    sds and, unless the fit is a ``point`` estimate, the ratio of the sds.
    """
    ours, theirs = (
        torch.cat([d["w"].flatten(1), d["b"].flatten(1)], 1) for d in (fit_draws, nuts)
    )
    nuts_sd = theirs.std(dim=0)
    diff = ((ours.mean(dim=0) - theirs.mean(dim=0)) / nuts_sd).cpu()
    out: dict[str, Any] = {
        "median_abs_mean_diff_in_sds": float(diff.abs().median()),
        "max_abs_mean_diff_in_sds": float(diff.abs().max()),
    }
    fig, axes = new_figure(1 if point else 2, size=4.5)
    axes[0].plot(diff, "o")
    axes[0].axhline(0, color="k", linestyle=":")
    axes[0].set(xlabel="coefficient", ylabel="(mean - NUTS mean) / NUTS sd")
    if point:
        out["sd_ratio_note"] = "a point estimate has no sd: only means are compared"
    else:
        ratio = (ours.std(dim=0) / nuts_sd).cpu()
        inside = ((ratio >= 0.8) & (ratio <= 1.25)).float().mean()
        out |= {
            "median_sd_ratio": float(ratio.median()),
            "min_sd_ratio": float(ratio.min()),
            "max_sd_ratio": float(ratio.max()),
            "share_sd_ratio_within_0.8_1.25": float(inside),
            "sd_ratio": ratio.tolist(),
        }
        axes[1].semilogy(ratio, "o")
        for level in (0.8, 1.0, 1.25):
            axes[1].axhline(level, color="k", linestyle=":" if level != 1 else "-")
        axes[1].set(xlabel="coefficient", ylabel="sd / NUTS sd")
    out["mean_diff_in_sds"] = diff.tolist()
    return out, fig


def titled(fig: Figure, title: str) -> Figure:
    fig.suptitle(title)
    return fig
