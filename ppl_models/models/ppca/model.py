"""Probabilistic PCA as a Pyro program, its guides and its closed-form fit.

The generative story (Tipping & Bishop, 1999), in the lecture's layout with one
column per data point::

    w ~ Normal(0, prior_w_scale)      shape (data_dim, latent_dim)
    z ~ Normal(0, 1)                  shape (latent_dim, N)
    x ~ Normal(w @ z, noise_scale)    shape (data_dim, N), noise_scale known
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import ELBO
from pyro.infer.autoguide import AutoDelta, AutoGuide, AutoNormal
from pyro.nn import PyroModule

from ppl_models.errors import DataError, UsageError
from ppl_models.inference.elbo import make_elbo as device_elbo
from ppl_models.inference.params import LocalParams
from ppl_models.validation import check_positive_float, check_positive_int

INFERENCE_METHODS = {
    "map": "point-mass guides for w and z (AutoDelta), Trace_ELBO: minimises the "
    "negative log joint",
    "meanfield": "independent Normal guides for w and z (AutoNormal), "
    "TraceMeanField_ELBO with analytic KL terms",
}


class PPCA(LocalParams, PyroModule):
    """Probabilistic PCA with a Normal prior on the principal axes ``w``.

    Prior constants are buffers, so ``.to(device)`` moves the whole model. Like its
    guides, it keeps any parameters in the module (see
    :class:`~ppl_models.inference.params.LocalParams`).

    :param data_dim: D, the dimension of each observation.
    :param latent_dim: K, the dimension of each latent code.
    :param noise_scale: sigma, the known observation noise scale.
    :param prior_w_scale: the prior standard deviation of each entry of ``w``.
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        noise_scale: float = 0.5,
        prior_w_scale: float = 2.0,
    ) -> None:
        super().__init__()
        check_positive_int("data_dim", data_dim)
        check_positive_int("latent_dim", latent_dim)
        check_positive_float("noise_scale", noise_scale)
        check_positive_float("prior_w_scale", prior_w_scale)
        self.data_dim = data_dim
        self.latent_dim = latent_dim
        self.register_buffer("zero", torch.tensor(0.0))
        self.register_buffer("one", torch.tensor(1.0))
        self.register_buffer("noise_scale", torch.tensor(float(noise_scale)))
        self.register_buffer("prior_w_scale", torch.tensor(float(prior_w_scale)))

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
        with latent_plate, data_plate:
            z = pyro.sample("z", dist.Normal(self.zero, self.one))
        with feature_plate, data_plate:
            return pyro.sample("x", dist.Normal(w @ z, self.noise_scale), obs=x)

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


class PPCADelta(LocalParams, AutoDelta):
    """Pyro's ``AutoDelta``, its point masses kept in the module."""


class PPCANormal(LocalParams, AutoNormal):
    """Pyro's ``AutoNormal``, its locations and scales kept in the module."""


def make_guide(model: PPCA, inference: str) -> AutoGuide:
    """A guide for ``w`` and ``z``: point masses (``"map"``) or mean-field Normals.

    The mean-field guide gives every entry of ``w`` and ``z`` its own Normal with a
    softplus-positive scale, so TraceMeanField_ELBO can use analytic KL terms. Both
    are Pyro's autoguides, with their parameters kept in the guide: a plain
    ``SVI(model, guide, pyro.optim.Adam(...), Trace_ELBO())`` trains them and leaves
    the param store alone.
    """
    if inference == "map":
        return PPCADelta(model, create_plates=model.plates)
    if inference == "meanfield":
        return PPCANormal(model, init_scale=0.1, create_plates=model.plates)
    raise UsageError(
        f"unknown inference {inference!r} for ppca: expected map, meanfield"
    )


def make_elbo(inference: str) -> ELBO:
    """The ELBO each inference method is fitted with: Trace_ELBO for ``"map"``,
    TraceMeanField_ELBO (analytic KL) for ``"meanfield"``.
    """
    return device_elbo("trace" if inference == "map" else "meanfield")


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


def closed_form_w(x: torch.Tensor, latent_dim: int, noise_scale: float) -> torch.Tensor:
    """Maximum-likelihood principal axes for known noise (Tipping & Bishop, 1999).

    ``W = U_K (Lambda_K - sigma^2 I)^(1/2)``, with ``U_K, Lambda_K`` the top K
    eigenvectors and eigenvalues of the second-moment matrix of ``x``. The model has
    no mean term, so the data are not centred. Unique only up to rotation and sign.

    :param x: observations, (data_dim, N).
    :returns: W, (data_dim, latent_dim).
    """
    second_moment = x @ x.T / x.shape[1]
    eigenvalues, eigenvectors = torch.linalg.eigh(second_moment)  # ascending
    top_values = eigenvalues.flip(0)[:latent_dim]
    top_vectors = eigenvectors.flip(1)[:, :latent_dim]
    return top_vectors * (top_values - noise_scale**2).clamp(min=0).sqrt()


def subspace_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of the largest principal angle between the column spaces of a and b.

    1 means the same subspace. For single columns it is ``|cos|`` of the angle
    between them, so the sign ambiguity of PCA does not matter.

    :param a: (D, K) and ``b``: (D, K).
    """
    qa, _ = torch.linalg.qr(a.double())
    qb, _ = torch.linalg.qr(b.double())
    return float(torch.linalg.svdvals(qa.T @ qb).min().clamp(max=1.0))
