"""Logistic regression as a full-batch (or minibatch) SVI model: its settings and
the hooks that put it on the command line."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from pyro.infer import ELBO

from ppl_models.errors import UsageError
from ppl_models.fullbatch import (
    FullBatchConfig,
    FullBatchFit,
    FullBatchSpec,
    WithExtras,
)
from ppl_models.models.logreg import criticize as crit
from ppl_models.models.logreg import data as labelled
from ppl_models.models.logreg.model import (
    INFERENCE_METHODS,
    LogReg,
    make_elbo,
    make_guide,
)
from ppl_models.plots import save_figure
from ppl_models.registry import register_model
from ppl_models.settings import setting

#: guide draws behind a VI fit's means, sds and predictions
GUIDE_DRAWS = 1000


@dataclass
class LogRegConfig(FullBatchConfig):
    """A logistic regression run; ``num_classes`` is taken from the labels."""

    inference: str = setting(
        "fullrank", "the posterior approximation", choices=tuple(INFERENCE_METHODS)
    )
    steps: int = setting(6000, "SVI steps in all, resumed ones too", resumable=True)
    # Small: the last steps' noise shrinks full-rank sds (breast cancer, against
    # NUTS: at 0.05 the median ratio is 0.76; at 0.01 for 3000 steps one of 31 is
    # 0.79; at 0.005 for 6000 all are within 0.88 to 1.09).
    lr: float = setting(0.005, "Adam's learning rate")
    dataset: str | None = setting(
        "breast_cancer",
        "scikit-learn's bundled data (no download): breast_cancer (2 classes), wine "
        "(3) or digits (10); ignored with --data",
        choices=tuple(labelled.DATASETS),
    )
    data: Path | None = setting(
        None,
        "a .npy or .csv file, one row per point, features and an integer label 0..K-1",
    )
    label_column: int | None = setting(
        None, "the file's label column, from 0 (default: the last)", low=0
    )
    test_fraction: float = setting(0.2, "the share of points held out (a seeded draw)")
    prior_scale: float = setting(1.0, "s, the prior sd of every weight and bias")
    batch_size: int | None = setting(
        None, "points per SVI step, a subsampled data plate (default: all)"
    )
    without_nuts: bool = setting(
        False, "leave out the NUTS reference a VI fit is held against (vs_nuts)"
    )
    nuts_samples: int = setting(
        1000, "NUTS draws kept (their sds are the yardstick of the VI fits)"
    )
    nuts_warmup: int = setting(500, "NUTS warm-up steps")
    num_classes: int | None = setting(
        None, "K: taken from the labels; a run records it", low=2
    )


@register_model
class LogRegSpec(FullBatchSpec):
    """Bayesian logistic (K = 2) and softmax (K > 2) regression."""

    name = "logreg"
    description = (
        "Bayesian logistic / softmax regression, y ~ Categorical(softmax(x @ w + b))"
    )
    inference_methods = INFERENCE_METHODS
    config_class = LogRegConfig
    headline_keys = (
        "final_loss",
        "heldout_accuracy",
        "heldout_log_density",
        "fit_seconds",
    )
    criticism_keys = (
        "heldout_accuracy",
        "heldout_log_density",
        "heldout_calibration_error",
        "ppc",
    )
    smoke_settings = {
        "steps": 30,
        "ppc_samples": 10,
        "without_nuts": True,
        "dataset": "wine",
    }

    @classmethod
    def resolve_config(cls, config: LogRegConfig) -> LogRegConfig:
        """K from the labels (refusing another); no dataset name with a file."""
        k = labelled.num_classes(config.dataset, config.data, config.label_column)
        if config.num_classes not in (None, k):
            raise UsageError(
                f"num_classes={config.num_classes}, but the labels have {k}"
            )
        return replace(
            config, num_classes=k, dataset=None if config.data else config.dataset
        )

    @classmethod
    def build(cls, config: LogRegConfig, device: torch.device) -> tuple:
        k = config.num_classes or cls.resolve_config(config).num_classes
        model = LogReg(k, config.prior_scale, config.batch_size).to(device)
        return model, make_guide(model, config.inference).to(device)

    @classmethod
    def data(cls, config: LogRegConfig, device: torch.device) -> WithExtras:
        """``(x, y)``, the standardized train split; the held-out split, and the
        train mean and sd the features were standardized with, as extras."""
        x, y = labelled.load(config.dataset, config.data, config.label_column)
        parts = [t.to(device) for t in labelled.split(x, y, config.test_fraction)]
        names = ("x_test", "y_test", "feature_mean", "feature_sd")
        return WithExtras(tuple(parts[:2]), dict(zip(names, parts[2:], strict=True)))

    @classmethod
    def elbo(cls, config: LogRegConfig) -> ELBO:
        return make_elbo(config.inference)

    @classmethod
    def statistics(cls, config: LogRegConfig) -> dict:
        k = config.num_classes or cls.resolve_config(config).num_classes
        return {
            f"share of class {c}": (lambda y, c=c: (y == c).float().mean())
            for c in range(k)
        }

    @classmethod
    def summary_numbers(cls, fit: FullBatchFit) -> dict[str, Any]:
        x, x_test = fit.data[0], fit.extras["x_test"]
        return {
            "num_train": x.shape[0],
            "num_test": x_test.shape[0],
            "num_features": x.shape[1],
        }

    @classmethod
    def log_likelihood(cls, fit: FullBatchFit) -> Any:
        """``log p(y_n | x_n, w, b)`` for every train point, minibatch fit or not."""
        x, y = fit.data
        return lambda draw: torch.log_softmax(
            fit.model.logits(x, draw["w"], draw["b"]), -1
        ).gather(-1, y[:, None])[:, 0]

    @classmethod
    def criticize(cls, fit: FullBatchFit, out_dir: Path) -> dict[str, Any]:
        """The predictive checks on the train labels, held-out accuracy, log
        density and calibration (``calibration.png``), and unless off, the fit's
        coefficients against NUTS (``vs_nuts``, ``vs_nuts.png``)."""
        out = super().criticize(fit, out_dir)
        title = f"logreg, {fit.config.inference}"
        nuts, diagnostics = None, {}
        if fit.config.inference == "nuts" or not fit.config.without_nuts:
            nuts, diagnostics = crit.nuts_draws(fit)
        draws = (
            nuts
            if fit.config.inference == "nuts"
            else crit.guide_draws(fit, GUIDE_DRAWS)
        )
        log_p = crit.predictive_log_probs(fit.model, fit.extras["x_test"], draws)
        numbers, fig = crit.heldout(log_p, fit.extras["y_test"])
        save_figure(
            crit.titled(fig, f"{title}: held-out reliability"),
            out_dir / "calibration.png",
        )
        out |= numbers
        if fit.config.inference == "nuts":
            out["nuts"] = diagnostics
        elif nuts is not None:
            vs, fig = crit.against_nuts(
                draws, nuts, point=fit.config.inference == "map"
            )
            save_figure(
                crit.titled(fig, f"{title} against NUTS"), out_dir / "vs_nuts.png"
            )
            out["vs_nuts"] = vs | diagnostics
        return out

    @classmethod
    def figure_notes(cls, config: LogRegConfig) -> dict[str, str]:
        return {
            **super().figure_notes(config),
            "calibration.png": "held-out points binned by confidence: the share right "
            "in each bin against its mean confidence, on the diagonal if calibrated",
            "vs_nuts.png": "each coefficient's mean off NUTS's in NUTS sds, and its sd "
            "over NUTS's (0.8 to 1.25 dotted)",
        }

    @classmethod
    def demo_runs(cls) -> dict[str, list[str]]:
        # Wine (3 classes, 142 train points), short: seconds, NUTS included.
        short = ["--dataset", "wine", "--steps", "1000", "--lr", "0.02"]
        nuts = ["--nuts-samples", "200", "--nuts-warmup", "200", "--overwrite"]
        return {"logreg-fullrank": ["--inference", "fullrank", *short, *nuts]}
