"""Bayesian logistic and softmax regression, and its guides.

    w ~ Normal(0, s)                      (D, C)
    b ~ Normal(0, s)                      (C,)
    y_n ~ Categorical(softmax(l_n))       l_n = x_n @ w + b, n = 1..N

with C = K outputs for K > 2 classes (softmax regression) and, for K = 2, C = 1 and
``l_n = (0, x_n @ w + b)``: ``p(y_n = 1) = sigmoid(x_n @ w + b)``, logistic
regression.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import ELBO
from pyro.nn import PyroModule

from ppl_models.inference.autoguides import (
    LocalAutoDelta,
    LocalAutoMultivariateNormal,
    LocalAutoNormal,
)
from ppl_models.inference.elbo import DeviceTrace_ELBO, DeviceTraceMeanField_ELBO
from ppl_models.inference.params import LocalParams

INFERENCE_METHODS = {
    "map": "point estimates of w and b (AutoDelta)",
    "meanfield": "an independent Normal per coefficient, TraceMeanField_ELBO",
    "fullrank": "one multivariate Normal over every coefficient "
    "(AutoMultivariateNormal)",
    "nuts": "NUTS draws (pyro.infer.MCMC), started at the MAP point the steps find",
}


class LogReg(LocalParams, PyroModule):
    """The model above, for ``num_classes`` = K classes and prior sd ``prior_scale``.

    With labels given and ``batch_size`` < N, each call sees a random minibatch of
    ``batch_size`` points whose log likelihood the data plate scales by N /
    ``batch_size``: an unbiased estimate of the full data's. Generating labels
    (``y=None``) covers every point.
    """

    def __init__(
        self, num_classes: int, prior_scale: float, batch_size: int | None = None
    ) -> None:
        super().__init__()
        self.num_classes, self.batch_size = num_classes, batch_size
        self.num_outputs = 1 if num_classes == 2 else num_classes
        self.register_buffer("prior_scale", torch.tensor(float(prior_scale)))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """:param x: features, (N, D). :param y: labels in 0..K-1, (N,)."""
        prior = dist.Normal(self.prior_scale.new_zeros(()), self.prior_scale)
        w = pyro.sample("w", prior.expand([x.shape[1], self.num_outputs]).to_event(2))
        b = pyro.sample("b", prior.expand([self.num_outputs]).to_event(1))
        n, batch = x.shape[0], self.batch_size
        size = batch if y is not None and batch is not None and batch < n else None
        with pyro.plate("data", n, subsample_size=size, device=x.device) as idx:
            labels = None if y is None else y[idx]
            logits = self.logits(x[idx], w, b)
            return pyro.sample("y", dist.Categorical(logits=logits), obs=labels)

    def logits(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The K class logits (..., N, K) of x (N, D), w (..., D, C), b (..., C)."""
        logits = x @ w + b.unsqueeze(-2)
        return F.pad(logits, (1, 0)) if self.num_classes == 2 else logits


def make_guide(model: LogReg, inference: str) -> torch.nn.Module:
    """The guide of an inference method (``nuts``: the MAP point it starts from)."""
    if inference == "meanfield":
        return LocalAutoNormal(model, init_scale=0.1)
    if inference == "fullrank":
        return LocalAutoMultivariateNormal(model, init_scale=0.1)
    return LocalAutoDelta(model)


def make_elbo(inference: str) -> ELBO:
    """Analytic KL terms for the mean-field guide; Trace_ELBO for the others."""
    return (
        DeviceTraceMeanField_ELBO() if inference == "meanfield" else DeviceTrace_ELBO()
    )
