"""Probabilistic PCA as a Pyro program, and its guides.

The generative story (Tipping & Bishop, 1999), in the lecture's layout with one
column per data point::

    w ~ Normal(0, prior_w_scale)          shape (data_dim, latent_dim)
    z ~ Normal(0, 1)                      shape (latent_dim, N)
    x ~ Normal(w @ z + mu, noise_scale)   shape (data_dim, N)

``mu`` is zero (the lecture's) or learned; ``noise_scale`` is known or learned. The
collapsed form integrates ``z`` out: ``x_n ~ MultivariateNormal(mu, w wᵀ + sigma² I)``,
whose MAP point is (up to the prior on ``w``) the maximum-likelihood solution.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.infer import ELBO
from pyro.infer.autoguide import AutoGuide
from pyro.nn import PyroModule, PyroParam
from torch.distributions import transform_to as constraints_to

from ppl_models.errors import DataError, UsageError
from ppl_models.inference.autoguides import LocalAutoDelta, LocalAutoNormal
from ppl_models.inference.elbo import make_elbo as device_elbo
from ppl_models.inference.params import LocalParams
from ppl_models.validation import check_positive_float, check_positive_int

INFERENCE_METHODS = {
    "map": "point-mass guides for w and z (AutoDelta), Trace_ELBO: the joint MAP "
    "of the lecture, whose |w| drifts",
    "collapsed": "z integrated out, a point-mass guide for w (AutoDelta): the MAP "
    "of w, mu and sigma, close to maximum likelihood",
    "meanfield": "independent Normal guides for w and z (AutoNormal), "
    "TraceMeanField_ELBO with analytic KL terms",
}


class PPCA(LocalParams, PyroModule):
    """Probabilistic PCA with a Normal prior on the principal axes ``w``.

    Prior constants are buffers, so ``.to(device)`` moves the whole model. Like its
    guides, it keeps any parameters (a learned ``mu`` or noise scale) in the module
    (see :class:`~ppl_models.inference.params.LocalParams`).

    :param data_dim: D, the dimension of each observation.
    :param latent_dim: K, the dimension of each latent code.
    :param noise_scale: sigma, the known observation noise scale; None learns it.
    :param prior_w_scale: the prior standard deviation of each entry of ``w``.
    :param learn_mean: learn the mean ``mu``; otherwise it is zero (the lecture's).
    :param collapsed: integrate ``z`` out; ``x`` is then one site of shape
        (N, data_dim), a multivariate Normal per data point.
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        noise_scale: float | None = 0.5,
        prior_w_scale: float = 2.0,
        *,
        learn_mean: bool = False,
        collapsed: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("data_dim", data_dim)
        check_positive_int("latent_dim", latent_dim)
        check_positive_float("prior_w_scale", prior_w_scale)
        self.data_dim = data_dim
        self.latent_dim = latent_dim
        self.collapsed = collapsed
        self.register_buffer("zero", torch.tensor(0.0))
        self.register_buffer("one", torch.tensor(1.0))
        self.register_buffer("prior_w_scale", torch.tensor(float(prior_w_scale)))
        if noise_scale is None and latent_dim >= data_dim:
            raise UsageError(
                f"latent_dim={latent_dim} must be below the data's {data_dim} "
                "dimensions to learn the noise scale; give a noise scale"
            )
        if noise_scale is None:
            self.noise_scale = PyroParam(torch.tensor(1.0), constraints.positive)
        else:
            check_positive_float("noise_scale", noise_scale)
            self.register_buffer("noise_scale", torch.tensor(float(noise_scale)))
        if learn_mean:
            self.mu = PyroParam(torch.zeros(data_dim, 1))
        else:  # not in the state dict: always zero, as in checkpoints before mu
            self.register_buffer("mu", torch.zeros(data_dim, 1), persistent=False)

    @property
    def learns_noise(self) -> bool:
        """Whether the noise scale is a parameter."""
        return "noise_scale" in self._pyro_params

    @property
    def learns_mean(self) -> bool:
        """Whether ``mu`` is a parameter."""
        return "mu" in self._pyro_params

    def forward(
        self, x: torch.Tensor | None = None, num_datapoints: int | None = None
    ) -> torch.Tensor:
        """Run the generative program; observe ``x`` when it is given.

        :param x: observations, (data_dim, N); ``None`` to generate data.
        :param num_datapoints: N when ``x`` is ``None``.
        :returns: x, (data_dim, N): the observations, or the generated data.
        """
        data_plate, latent_plate, feature_plate = self.plates(x, num_datapoints)
        w = pyro.sample(
            "w",
            dist.Normal(self.zero, self.prior_w_scale)
            .expand([self.data_dim, self.latent_dim])
            .to_event(2),
        )
        if self.collapsed:
            variance = self.noise_scale.square().expand(self.data_dim)
            marginal = dist.LowRankMultivariateNormal(self.mu[:, 0], w, variance)
            with data_plate:
                rows = pyro.sample("x", marginal, obs=None if x is None else x.T)
            return rows.T
        with latent_plate, data_plate:
            z = pyro.sample("z", dist.Normal(self.zero, self.one))
        with feature_plate, data_plate:
            return pyro.sample(
                "x", dist.Normal(w @ z + self.mu, self.noise_scale), obs=x
            )

    def as_columns(self, x_site: torch.Tensor) -> torch.Tensor:
        """The value of site ``x`` (or a stack of them) in the model's layout
        (..., data_dim, N): the collapsed form's site holds a row per data point.
        """
        return x_site.transpose(-1, -2) if self.collapsed else x_site

    def start_from(self, x: torch.Tensor) -> None:
        """Start the learned ``mu`` at the data's mean and the learned noise scale
        at their root mean variance (all variance as noise, as at ``w = 0``), so
        that Adam need not walk there from 0 and 1 on a user's scale.

        :param x: observations, (data_dim, N).
        """
        with torch.no_grad():
            mean = x.mean(dim=1, keepdim=True)
            if self.learns_mean:
                self.mu_unconstrained.copy_(mean)
            if self.learns_noise:
                scale = (x - mean).square().mean().sqrt().clamp(min=1e-6)
                self.noise_scale_unconstrained.copy_(
                    constraints_to(constraints.positive).inv(scale)
                )

    def plates(
        self, x: torch.Tensor | None = None, num_datapoints: int | None = None
    ) -> list[pyro.plate]:
        """The plates over data points (dim -1), latent and data dimensions (dim -2),
        on the model's device. Guides take them too, so their plate indices are not
        created on the default device.
        """
        n = self._num_datapoints(x, num_datapoints)
        device = self.zero.device
        return [
            pyro.plate("data", n, dim=-1, device=device),
            pyro.plate("latent_dims", self.latent_dim, dim=-2, device=device),
            pyro.plate("data_dims", self.data_dim, dim=-2, device=device),
        ]

    def _num_datapoints(self, x: torch.Tensor | None, n: int | None) -> int:
        if x is None:
            if n is None:
                raise UsageError("PPCA needs either data x or num_datapoints")
            check_positive_int("num_datapoints", n)
            return n
        if x.dim() != 2 or x.shape[0] != self.data_dim:
            raise DataError(
                f"PPCA data must have shape (data_dim={self.data_dim}, N) in the "
                f"model's layout, got {tuple(x.shape)}"
            )
        if n is not None and n != x.shape[1]:
            raise DataError(f"num_datapoints={n} but the data has {x.shape[1]} points")
        return x.shape[1]


def make_guide(model: PPCA, inference: str) -> AutoGuide:
    """A guide for the model's latents: point masses (``"map"``; ``"collapsed"``,
    whose model has no ``z``) or mean-field Normals (``"meanfield"``).

    The mean-field guide gives every entry of ``w`` and ``z`` its own Normal with a
    softplus-positive scale, so TraceMeanField_ELBO can use analytic KL terms. Both
    are Pyro's autoguides, with their parameters kept in the guide: a plain
    ``SVI(model, guide, pyro.optim.Adam(...), Trace_ELBO())`` trains them and leaves
    the param store alone.
    """
    if inference in ("map", "collapsed"):
        if model.collapsed != (inference == "collapsed"):
            raise UsageError(
                f"inference {inference!r} needs collapsed={not model.collapsed}"
            )
        return LocalAutoDelta(model, create_plates=model.plates)
    if inference == "meanfield":
        return LocalAutoNormal(model, init_scale=0.1, create_plates=model.plates)
    raise UsageError(
        f"unknown inference {inference!r} for ppca: expected "
        + ", ".join(INFERENCE_METHODS)
    )


def make_elbo(inference: str) -> ELBO:
    """The ELBO each inference method is fitted with: Trace_ELBO for ``"map"`` and
    ``"collapsed"``, TraceMeanField_ELBO (analytic KL) for ``"meanfield"``.
    """
    return device_elbo("meanfield" if inference == "meanfield" else "trace")


def simulate(
    model: PPCA, num_datapoints: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw a data set from the model's prior predictive.

    :returns: ``(x, w, z)`` with shapes (data_dim, N), (data_dim, latent_dim),
        (latent_dim, N), on the model's device.
    """
    with torch.no_grad():
        trace = pyro.poutine.trace(model).get_trace(num_datapoints=num_datapoints)
    return (trace.nodes[s]["value"] for s in ("x", "w", "z"))  # type: ignore[return-value]
