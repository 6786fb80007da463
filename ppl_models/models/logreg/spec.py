"""Logistic regression on the command line: its settings, and the hooks that fit
it by SVI (minibatch or not), draw NUTS beside it and check its predictions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pyro.infer import ELBO

from ppl_models.criticism.classification import (
    Draws,
    held_out_checks,
    predictive_log_probs,
)
from ppl_models.data.labelled import LabelledDataSettings
from ppl_models.fullbatch import (
    FullBatchFit,
    NutsReferenceConfig,
    NutsReferenceSpec,
    WithExtras,
)
from ppl_models.models.logreg.model import (
    INFERENCE_METHODS,
    LogReg,
    make_elbo,
    make_guide,
)
from ppl_models.plots import plot_reliability, save_figure
from ppl_models.registry import register_model
from ppl_models.settings import setting


@dataclass
class LogRegConfig(NutsReferenceConfig, LabelledDataSettings):
    """A logistic regression run; ``num_classes`` is taken from the labels."""

    inference: str = setting(
        "fullrank", "the posterior approximation", choices=tuple(INFERENCE_METHODS)
    )
    steps: int = setting(6000, "SVI steps in all, resumed ones too", resumable=True)
    # Small: the last steps' noise shrinks full-rank sds (breast cancer, against
    # NUTS: at 0.05 the median ratio is 0.76; at 0.01 for 3000 steps one of 31 is
    # 0.79; at 0.005 for 6000 all are within 0.88 to 1.09).
    lr: float = setting(0.005, "Adam's learning rate")
    prior_scale: float = setting(1.0, "s, the prior sd of every weight and bias")
    batch_size: int | None = setting(
        None, "points per SVI step, a subsampled data plate (default: all)"
    )


@register_model
class LogRegSpec(NutsReferenceSpec):
    """Bayesian logistic (K = 2) and softmax (K > 2) regression."""

    name = "logreg"
    description = (
        "Bayesian logistic / softmax regression, y ~ Categorical(softmax(x @ w + b))"
    )
    inference_methods = INFERENCE_METHODS
    config_class = LogRegConfig
    headline_keys = ("final_loss", "heldout_accuracy", "heldout_log_density",
                     "fit_seconds")  # fmt: skip
    criticism_keys = ("heldout_accuracy", "heldout_log_density",
                      "heldout_calibration_error", "ppc")  # fmt: skip
    smoke_settings = {"steps": 30, "ppc_samples": 10, "without_nuts": True,
                      "dataset": "wine"}  # fmt: skip

    @classmethod
    def resolve_config(cls, config: LogRegConfig) -> LogRegConfig:
        return config.with_classes()

    @classmethod
    def build(cls, config: LogRegConfig, device: torch.device) -> tuple:
        k = config.num_classes or config.with_classes().num_classes
        model = LogReg(k, config.prior_scale, config.batch_size).to(device)
        return model, make_guide(model, config.inference).to(device)

    @classmethod
    def data(cls, config: LogRegConfig, device: torch.device) -> WithExtras:
        """``(x, y)``, the standardized train split; the held-out split, and the
        train mean and sd the features were standardized with, as extras."""
        parts = [t.to(device) for t in config.split_points()]
        names = ("x_test", "y_test", "feature_mean", "feature_sd")
        return WithExtras(tuple(parts[:2]), dict(zip(names, parts[2:], strict=True)))

    @classmethod
    def elbo(cls, config: LogRegConfig) -> ELBO:
        return make_elbo(config.inference)

    @classmethod
    def statistics(cls, config: LogRegConfig) -> dict:
        return {
            f"share of class {c}": (lambda y, c=c: (y == c).float().mean())
            for c in range(config.num_classes or config.with_classes().num_classes)
        }

    @classmethod
    def summary_numbers(cls, fit: FullBatchFit) -> dict[str, Any]:
        (num_train, num_features), num_test = (
            fit.data[0].shape,
            len(fit.extras["y_test"]),
        )
        return {"num_train": num_train, "num_test": num_test,
                "num_features": num_features}  # fmt: skip

    @classmethod
    def log_likelihood(cls, fit: FullBatchFit) -> Any:
        """``log p(y_n | x_n, w, b)`` for every train point, minibatch fit or not."""
        x, y = fit.data
        return lambda draw: torch.log_softmax(
            fit.model.logits(x, draw["w"], draw["b"]), -1
        ).gather(-1, y[:, None])[:, 0]

    @classmethod
    def nuts_model(cls, fit: FullBatchFit) -> LogReg:
        """The model on all the points, however the fit subsampled them."""
        return LogReg(fit.model.num_classes, float(fit.model.prior_scale)).double()

    @classmethod
    def criticize_draws(
        cls, fit: FullBatchFit, draws: Draws, out_dir: Path
    ) -> dict[str, Any]:
        """Held-out accuracy, log predictive density and calibration
        (``calibration.png``) of the posterior predictive of ``draws``."""
        x, y = fit.extras["x_test"], fit.extras["y_test"]
        log_p = predictive_log_probs(
            lambda d: torch.log_softmax(fit.model.logits(x, d["w"], d["b"]), -1), draws
        )
        numbers, bins = held_out_checks(log_p, y)
        title = f"logreg, {fit.config.inference}: held-out reliability"
        save_figure(plot_reliability(bins, title=title), out_dir / "calibration.png")
        return numbers

    @classmethod
    def figure_notes(cls, config: LogRegConfig) -> dict[str, str]:
        return {
            **super().figure_notes(config),
            "calibration.png": "held-out points binned by confidence: the share right "
            "in each bin against its mean confidence, on the diagonal if calibrated",
        }

    @classmethod
    def demo_runs(cls) -> dict[str, list[str]]:
        # Wine (3 classes, 142 train points), short: seconds, NUTS included.
        short = ["--dataset", "wine", "--steps", "1000", "--lr", "0.02"]
        nuts = ["--nuts-samples", "200", "--nuts-warmup", "200", "--overwrite"]
        return {"logreg-fullrank": ["--inference", "fullrank", *short, *nuts]}
