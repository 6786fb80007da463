"""The README's worked example of adding a model: Bayesian linear regression.

The test suite registers it (``tests/conftest.py`` imports this file), so every
registry-parametrized test runs it; users never see it in ``ppl-models list``.

    w ~ Normal(0, 1)               shape (D,)
    b ~ Normal(0, 1)
    y ~ Normal(x @ w + b, sigma)   shape (N,), x (N, D), sigma known
"""

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam

from ppl_models import register_model
from ppl_models.fullbatch import FullBatchConfig, FullBatchFit, FullBatchSpec
from ppl_models.inference.params import LocalParams
from ppl_models.settings import setting


@dataclass
class RegressionConfig(FullBatchConfig):
    num_datapoints: int = setting(100, "N, simulated points")
    num_features: int = setting(3, "D, features of each point")
    noise_scale: float = setting(0.5, "sigma, the known noise sd")


class Regression(LocalParams, PyroModule):
    def __init__(self, noise_scale: float) -> None:
        super().__init__()
        self.register_buffer("sigma", torch.tensor(noise_scale))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        zero = self.sigma.new_zeros(x.shape[1])
        w = pyro.sample("w", dist.Normal(zero, 1.0).to_event(1))
        b = pyro.sample("b", dist.Normal(zero[0], 1.0))
        with pyro.plate("data", x.shape[0], device=x.device):
            return pyro.sample("y", dist.Normal(x @ w + b, self.sigma), obs=y)


class MeanField(LocalParams, PyroModule):
    """q(w) q(b): a Normal for each, of locations ``loc`` and scales ``scale``."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.loc = PyroParam(torch.zeros(num_features + 1))
        self.scale = PyroParam(0.1 * torch.ones(num_features + 1), constraints.positive)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        pyro.sample("w", dist.Normal(self.loc[:-1], self.scale[:-1]).to_event(1))
        pyro.sample("b", dist.Normal(self.loc[-1], self.scale[-1]))


@register_model
class RegressionSpec(FullBatchSpec):
    name = "linreg"
    description = "Bayesian linear regression (the README's worked example)"
    inference_methods = {"meanfield": "independent Normals for w and b"}
    config_class = RegressionConfig

    @classmethod
    def build(cls, config: RegressionConfig, device: torch.device) -> tuple:
        guide = MeanField(config.num_features)
        return Regression(config.noise_scale).to(device), guide.to(device)

    @classmethod
    def data(cls, config: RegressionConfig, device: torch.device) -> tuple:
        x = torch.randn(config.num_datapoints, config.num_features, device=device)
        w = torch.randn(config.num_features, device=device)
        noise = config.noise_scale * torch.randn(config.num_datapoints, device=device)
        return x, x @ w + 1.0 + noise

    @classmethod
    def summary_numbers(cls, fit: FullBatchFit) -> dict:
        loc = fit.guide.loc.tolist()
        return {"w_mean": loc[:-1], "b_mean": loc[-1]}
