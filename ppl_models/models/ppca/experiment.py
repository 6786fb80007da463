"""PPCA as a full-batch SVI model: the hooks that put it on the command line."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyro.distributions as dist
import torch
from pyro.infer import ELBO

from ppl_models.data.arrays import load_array_file
from ppl_models.errors import UsageError
from ppl_models.fullbatch import FullBatchSpec, WithExtras
from ppl_models.models.ppca import checkpoint, criticize
from ppl_models.models.ppca.config import PPCARunConfig
from ppl_models.models.ppca.fit import PPCAFit
from ppl_models.models.ppca.model import (
    INFERENCE_METHODS,
    PPCA,
    make_elbo,
    make_guide,
    simulate,
)
from ppl_models.registry import register_model
from ppl_models.validation import (
    as_data_matrix,
    check_float32_scale,
    check_positive_int,
    check_varies,
    divisor,
    top_variance,
)

#: the sd of the prior on each entry of w that PPCASpec.build's models have
PRIOR_W_SCALE = float(inspect.signature(PPCA).parameters["prior_w_scale"].default)
#: the ``top_variance / (N * PRIOR_W_SCALE**2)`` above which a fit on a user's data
#: carries a note. The collapsed MAP of an axis of variance lambda solves
#: ``u**2 + N p**2 u - N p**2 lambda = 0`` (u = |w|**2 + sigma**2), so the prior
#: shrinks u by about lambda / (N p**2) of itself. Measured (N = 30 to 2000) at
#: this value, the collapsed fit's axes are within 6% of maximum likelihood in
#: length and 1e-4 in direction; at 3 the mean-field fit collapses to w = 0, and
#: far above every method does, its noise taking all the variance.
MAX_PRIOR_PULL = 0.1

_log = logging.getLogger(__name__)


def check_user_data(x_nd: torch.Tensor) -> None:
    """Refuse a user's data PPCA cannot fit: fewer than two points, no variance,
    or a spread whose squares overflow float32.

    :param x_nd: the data, (N, D), finite.
    :raises DataError: saying what to change.
    """
    check_varies(x_nd, "data")
    check_float32_scale(x_nd, "data")


def prior_pull_note(x_nd: torch.Tensor, *, centre: bool) -> str | None:
    """A note on how far the prior on w pulls a fit of ``x_nd`` (N, D) from
    maximum likelihood, where it is more than a few percent; else None.

    The prior's sd is fixed (the lecture's), not scaled to the data: on data of a
    large scale it shrinks the axes, and far above :data:`MAX_PRIOR_PULL` it
    collapses them to zero with the noise taking all the variance.
    """
    n = x_nd.shape[0]
    pull = top_variance(x_nd, centre=centre) / (n * PRIOR_W_SCALE**2)
    if pull <= MAX_PRIOR_PULL:
        return None
    return (
        f"the prior on w (sd {PRIOR_W_SCALE:g}) pulls the axes toward zero on data "
        f"of this scale: their variance along the principal axis is {pull:.3g} x N "
        f"x {PRIOR_W_SCALE:g}^2, and above {MAX_PRIOR_PULL:g} the fitted axes are "
        "shorter than maximum likelihood's (compare w with w_closed_form), above "
        f"about 3 zero; divide the data by {divisor(pull / MAX_PRIOR_PULL)} or more "
        "for a fit within a few percent of it"
    )


def check_num_datapoints(n: int) -> int:
    """Return ``n`` if it is an integer >= 2, the fewest points to simulate."""
    check_positive_int("num_datapoints", n)
    if n < 2:
        raise UsageError(
            f"num_datapoints={n}: at least 2 are needed, as the data's covariance "
            "needs two points"
        )
    return n


@register_model
class PPCASpec(FullBatchSpec):
    """Probabilistic PCA (Tipping & Bishop): joint MAP, collapsed MAP and mean-field
    VI, with the mean and the noise scale learned on a user's data.
    """

    name = "ppca"
    label = "PPCA"
    description = "probabilistic PCA, x ~ Normal(w @ z + mu, sigma)"
    inference_methods = INFERENCE_METHODS
    config_class = PPCARunConfig
    fit_class = PPCAFit
    headline_keys = (
        "final_loss",
        "axis_cosine_true",
        "axis_cosine_closed_form",
        "noise_scale",
        "noise_scale_closed_form",
        "replay_cov_rel_error",
        "fit_seconds",
    )
    criticism_keys = ("replay_cov_rel_error", "ppc")
    # The model is PPCA(x, num_datapoints): it observes x, its first argument.
    observed_site = "x"
    observed_arg = 0
    smoke_settings = {"steps": 50, "num_datapoints": 200, "ppc_samples": 20}

    @classmethod
    def build(cls, config: PPCARunConfig, device: torch.device) -> tuple:
        model = PPCA(
            config.data_dim,
            config.latent_dim,
            config.noise_scale,
            learn_mean=config.learns_mean,
            collapsed=config.inference == "collapsed",
        ).to(device)
        return model, make_guide(model, config.inference)

    @classmethod
    def start_from(cls, model: PPCA, guide: torch.nn.Module, data: tuple) -> None:
        # Here, as a fit from Python on its own data passes no other hook.
        check_varies(data[0].T, "data")
        check_float32_scale(data[0].T, "data")
        model.start_from(data[0])

    @classmethod
    def data(cls, config: PPCARunConfig, device: torch.device) -> Any:
        """``(x,)``, x (data_dim, N): the data file's, or simulated from the prior
        predictive, keeping the true axes as the extra ``w_true``.
        """
        if config.data is not None:
            x_nd = as_data_matrix(load_array_file(config.data), "data")
            check_user_data(x_nd)
            note = prior_pull_note(x_nd, centre=config.learns_mean)
            if note is not None:
                _log.warning("note: %s", note)
            return (x_nd.to(device).T.contiguous(),)
        model = PPCA(config.data_dim, config.latent_dim, config.simulation_noise_scale)
        n = check_num_datapoints(config.num_datapoints)
        x, w_true, _ = simulate(model.to(device), n)
        return WithExtras((x,), {"w_true": w_true})

    @classmethod
    def resolve_config(cls, config: PPCARunConfig) -> PPCARunConfig:
        """With a data file, its N and D as ``num_datapoints`` and ``data_dim``;
        for simulated data, the lecture's known noise scale unless one is given.
        ``mean="auto"`` becomes what the fit does.
        """
        mean = "learned" if config.learns_mean else "zero"
        if config.data is None:
            check_num_datapoints(config.num_datapoints)
            noise = config.simulation_noise_scale
            return replace(config, noise_scale=noise, mean=mean)
        x_nd = as_data_matrix(load_array_file(config.data), "data")
        check_user_data(x_nd)
        n, d = x_nd.shape
        return replace(config, num_datapoints=n, data_dim=d, mean=mean)

    @classmethod
    def upgrade_checkpoint(cls, record: dict[str, Any]) -> dict[str, Any]:
        return checkpoint.upgrade_checkpoint(record)

    @classmethod
    def elbo(cls, config: PPCARunConfig) -> ELBO:
        return make_elbo(config.inference)

    @classmethod
    def predict_args(cls, config: PPCARunConfig, data: tuple) -> tuple:
        return (None, data[0].shape[1])

    @classmethod
    def summary_numbers(cls, fit: PPCAFit) -> dict[str, Any]:
        numbers = {
            "w": fit.w.tolist(),
            "w_closed_form": fit.w_closed_form.tolist(),
            **fit.axis_cosines(),
            "mu": fit.mu[:, 0].tolist(),
            "noise_scale": fit.noise_scale,
            "noise_scale_learned": fit.model.learns_noise,
            "noise_scale_closed_form": fit.closed_form.noise_scale_ml,
        }
        if fit.inference == "map" and fit.model.learns_noise:
            numbers["noise_scale_note"] = (
                "joint MAP's noise scale is biased low by design: it divides the "
                "residual by D where maximum likelihood divides by D - K"
            )
        if fit.w_true is None:  # a user's data
            note = prior_pull_note(fit.x.T, centre=fit.model.learns_mean)
            if note is not None:
                numbers["prior_note"] = note
        if fit.w_true is not None:
            numbers["w_true"] = fit.w_true.tolist()
        if fit.w_scale is not None:
            numbers["w_scale"] = fit.w_scale.tolist()
        return numbers

    @classmethod
    def dims(cls, config: PPCARunConfig) -> dict[str, list[str]]:
        # The collapsed model's x has a row per data point.
        x = ["point", "feature"] if config.inference == "collapsed" else None
        return {
            "w": ["feature", "axis"],
            "z": ["axis", "point"],
            "x": x or ["feature", "point"],
        }

    @classmethod
    def figure_notes(cls, config: PPCARunConfig) -> dict[str, str]:
        notes = {
            **super().figure_notes(config),
            "replay.png": "the data beside data generated from the fitted w and z: "
            "the two clouds should overlap",
            "vs_nuts.png": "the fit's w against NUTS draws of its posterior, with "
            "the closed form",
        }
        if config.inference == "collapsed":
            notes["replay.png"] = (
                "the data beside data generated from the fitted w, z integrated "
                "out: the two clouds should overlap"
            )
        if config.inference == "map":
            notes["ppc.png"] += (
                "; joint MAP sits near p = 1 on the variance along the axis: its "
                "codes z absorb the noise, and replicates add it again"
            )
        return notes

    @classmethod
    def log_likelihood(cls, fit: PPCAFit) -> Callable[[dict], torch.Tensor]:
        """``log p(x_n | w, mu, sigma)`` with ``z_n`` integrated out, (N,): each
        point's own code would leave LOO undefined.
        """
        rows = fit.x.T
        variance = fit.model.noise_scale.detach().square().expand(rows.shape[1])
        mean = fit.mu[:, 0]

        def pointwise(latents: dict[str, torch.Tensor]) -> torch.Tensor:
            marginal = dist.LowRankMultivariateNormal(mean, latents["w"], variance)
            return marginal.log_prob(rows)

        return pointwise

    @classmethod
    def criticize(cls, fit: PPCAFit, out_dir: Path) -> dict[str, Any]:
        return criticize.criticize(fit, out_dir)

    @classmethod
    def demo_runs(cls) -> dict[str, list[str]]:
        return {
            f"ppca-{name}": ["--inference", name, "--overwrite"]
            for name in INFERENCE_METHODS
        }
