"""NUTS as the gold standard of a full-batch model's posterior.

A spec that subclasses :class:`NutsReferenceSpec`, with a config that subclasses
:class:`NutsReferenceConfig`, gets two things:

- ``nuts`` as an inference method: the SVI steps find the MAP point (the spec's
  ``build`` gives an ``AutoDelta`` guide for it) and NUTS, started there, draws the
  posterior that its criticism uses (``nuts`` diagnostics in ``summary.json``);
- every VI fit held against NUTS: each latent's mean off NUTS's in NUTS sds and its
  sd over NUTS's (``vs_nuts`` in ``summary.json``, ``vs_nuts.png``).

Its draw-based checks (held-out predictions, say) go in :meth:`criticize_draws`,
which gets the posterior's draws: NUTS's for ``nuts``, the guide's otherwise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyro
import torch
from pyro.infer import MCMC, NUTS, Predictive

from ppl_models.criticism.classification import Draws
from ppl_models.fullbatch.config import FullBatchConfig
from ppl_models.fullbatch.fit import FullBatchFit
from ppl_models.fullbatch.spec import Data, FullBatchSpec
from ppl_models.plots import plot_against_nuts, save_figure
from ppl_models.seeding import caller_rng_kept, derived_seed
from ppl_models.settings import setting


@dataclass
class NutsReferenceConfig(FullBatchConfig):
    """A full-batch config with the NUTS reference's settings."""

    without_nuts: bool = setting(
        False, "leave out the NUTS reference a VI fit is held against (vs_nuts)"
    )
    nuts_samples: int = setting(
        1000, "NUTS draws kept (their sds are the yardstick of the VI fits)"
    )
    nuts_warmup: int = setting(500, "NUTS warm-up steps")


def nuts_draws(
    model: torch.nn.Module,
    args: Data,
    start: Draws,
    *,
    num_samples: int,
    warmup_steps: int,
    jit_compile: bool = True,
) -> tuple[Draws, dict[str, float]]:
    """NUTS draws of ``model(*args)``'s latent sites, site -> (S, ...), and their
    largest split R-hat and smallest effective sample size.

    One chain, started at ``start`` (site -> value), its potential JIT-compiled
    unless not ``jit_compile``; ``model``, ``args`` and ``start`` as given (make
    them float64 and put them on the CPU first: for a few hundred latents a GPU is
    no faster). Draws from the caller's generators.
    """
    kernel = NUTS(model, jit_compile=jit_compile, ignore_jit_warnings=True)
    mcmc = MCMC(
        kernel,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        initial_params=start,
        disable_progbar=True,
    )
    mcmc.run(*args)
    draws, diagnostics = mcmc.get_samples(), mcmc.diagnostics()
    return draws, {
        "nuts_r_hat_max": max(float(diagnostics[k]["r_hat"].max()) for k in draws),
        "nuts_n_eff_min": min(float(diagnostics[k]["n_eff"].min()) for k in draws),
    }


def against_nuts(
    fit_draws: Draws, nuts: Draws, point: bool
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]:
    """Per coefficient (each site's entries, in ``fit_draws``' order): the
    difference of the means in NUTS sds and, unless the fit is a ``point``
    estimate, the ratio of the sds.

    :param fit_draws: site -> (S, ...), the fit's draws (one, for a point).
    :param nuts: site -> (S', ...), NUTS's.
    :returns: the summary entries, the differences (P,) and the ratios (P,).
    """
    ours, theirs = (
        torch.cat([d[site].flatten(1) for site in fit_draws], 1)
        for d in (fit_draws, nuts)
    )
    nuts_sd = theirs.std(dim=0)
    diff = ((ours.mean(dim=0) - theirs.mean(dim=0)) / nuts_sd).cpu()
    out: dict[str, Any] = {
        "median_abs_mean_diff_in_sds": float(diff.abs().median()),
        "max_abs_mean_diff_in_sds": float(diff.abs().max()),
    }
    ratio = None
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
    out["mean_diff_in_sds"] = diff.tolist()
    return out, diff, ratio


class NutsReferenceSpec(FullBatchSpec):
    """A :class:`FullBatchSpec` whose posterior NUTS can sample (see the module's
    docstring). Its guides are Pyro autoguides: their ``median`` starts NUTS.
    """

    config_class: ClassVar[type[NutsReferenceConfig]]
    #: guide draws behind a VI fit's means, sds and draw-based checks
    num_guide_draws: ClassVar[int] = 1000
    #: the inference methods whose guide is a point (their sds are not compared)
    point_methods: ClassVar[tuple[str, ...]] = ("map",)

    @classmethod
    def nuts_model(cls, fit: FullBatchFit) -> torch.nn.Module:
        """The model NUTS samples, in float64 on the CPU (default: a copy of the
        fit's). A model that subsamples its data gives one that does not."""
        return copy.deepcopy(fit.model).double().cpu()

    @classmethod
    def nuts(cls, fit: FullBatchFit) -> tuple[Draws, dict[str, float]]:
        """NUTS draws given the fit's data, on the fit's device, started at the
        guide's median, and their diagnostics (see :func:`nuts_draws`). Seeded from
        the run's seed, apart from the caller's generators."""
        args = tuple(
            t.cpu().double() if torch.is_tensor(t) and t.is_floating_point()
            else t.cpu() if torch.is_tensor(t) else t
            for t in fit.data
        )  # fmt: skip
        median = fit.guide.median(*fit.data)
        start = {k: v.detach().double().cpu() for k, v in median.items()}
        with caller_rng_kept([fit.device]):
            pyro.set_rng_seed(derived_seed(fit.config.seed, "nuts"))
            draws, diagnostics = nuts_draws(
                cls.nuts_model(fit),
                args,
                start,
                num_samples=fit.config.nuts_samples,
                warmup_steps=fit.config.nuts_warmup,
            )
        return {k: draws[k].float().to(fit.device) for k in start}, diagnostics

    @classmethod
    def guide_draws(cls, fit: FullBatchFit, num_samples: int) -> Draws:
        """``num_samples`` draws of every latent site from the fit's guide."""
        sites = list(fit.guide.median(*fit.data))
        predictive = Predictive(
            fit.guide, num_samples=num_samples, return_sites=sites, parallel=True
        )
        with torch.no_grad():
            draws = predictive(*fit.data)
        return {site: draws[site].detach() for site in sites}

    @classmethod
    def criticize(cls, fit: FullBatchFit, out_dir: Path) -> dict[str, Any]:
        """The predictive checks, :meth:`criticize_draws` on the posterior's draws,
        and NUTS's diagnostics (``nuts``) or, unless ``without_nuts``, the fit held
        against NUTS (``vs_nuts``, ``vs_nuts.png``)."""
        out = super().criticize(fit, out_dir)
        config = fit.config
        nuts, diagnostics = None, {}
        if config.inference == "nuts" or not config.without_nuts:
            nuts, diagnostics = cls.nuts(fit)
        if config.inference == "nuts":
            out |= cls.criticize_draws(fit, nuts, out_dir)
            return out | {"nuts": diagnostics}
        draws = cls.guide_draws(fit, cls.num_guide_draws)
        out |= cls.criticize_draws(fit, draws, out_dir)
        if nuts is not None:
            point = config.inference in cls.point_methods
            numbers, diff, ratio = against_nuts(draws, nuts, point)
            title = f"{cls.label or cls.name}, {config.inference} against NUTS"
            figure = plot_against_nuts(diff, ratio, title=title)
            save_figure(figure, out_dir / "vs_nuts.png")
            out["vs_nuts"] = numbers | diagnostics
        return out

    @classmethod
    def criticize_draws(
        cls, fit: FullBatchFit, draws: Draws, out_dir: Path
    ) -> dict[str, Any]:
        """Checks of the posterior's ``draws`` (site -> (S, ...)): write plots into
        ``out_dir``, return summary entries (default: none)."""
        return {}

    @classmethod
    def figure_notes(cls, config: NutsReferenceConfig) -> dict[str, str]:
        return {
            **super().figure_notes(config),
            "vs_nuts.png": "each coefficient's mean off NUTS's in NUTS sds, and its sd "
            "over NUTS's (0.8 to 1.25 dotted)",
        }
