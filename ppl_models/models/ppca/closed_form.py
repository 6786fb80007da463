"""PPCA's maximum-likelihood solution in closed form (Tipping & Bishop, 1999).

With ``S`` the covariance of the data (about their mean, or about zero for the
lecture's model, which has no mean) and ``U_K, Lambda_K`` its top K eigenvectors and
eigenvalues::

    mu_ML      = the mean of the data (zero for the lecture's model)
    sigma²_ML  = the mean of the D - K discarded eigenvalues
    W_ML       = U_K (Lambda_K - sigma² I)^(1/2)    unique up to rotation and sign

``sigma²`` in ``W_ML`` is ``sigma²_ML`` where the noise is learned and the known
value where it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ppl_models.errors import UsageError


@dataclass(frozen=True)
class ClosedForm:
    """The maximum-likelihood PPCA fit of a data set."""

    #: mu, (data_dim, 1): the data's mean, or zeros where the model has no mean
    mean: torch.Tensor
    #: W, (data_dim, latent_dim)
    w: torch.Tensor
    #: sigma_ML, the square root of the mean discarded eigenvalue; None if K = D
    noise_scale_ml: float | None


def closed_form(
    x: torch.Tensor,
    latent_dim: int,
    noise_scale: float | None = None,
    *,
    centre: bool = True,
) -> ClosedForm:
    """Tipping and Bishop's maximum-likelihood mu, W and sigma for data ``x``.

    :param x: observations in the model's layout, (data_dim, N).
    :param noise_scale: the known sigma, or None where it is learned (then W uses
        sigma_ML).
    :param centre: whether the model has a mean (the lecture's has none: then the
        eigenvectors are those of the second-moment matrix).
    :raises UsageError: if the noise is learned and ``latent_dim`` leaves no
        eigenvalue to estimate it from.
    """
    data_dim, n = x.shape
    if noise_scale is None and latent_dim >= data_dim:
        raise UsageError(
            f"latent_dim={latent_dim} must be below the data's {data_dim} dimensions "
            "to learn the noise scale; give --noise-scale"
        )
    mean = x.mean(dim=1, keepdim=True) if centre else torch.zeros_like(x[:, :1])
    centred = x - mean
    eigenvalues, eigenvectors = torch.linalg.eigh(centred @ centred.T / n)
    eigenvalues, eigenvectors = (
        eigenvalues.flip(0),
        eigenvectors.flip(1),
    )  # largest first
    discarded = eigenvalues[latent_dim:]
    noise_ml = float(discarded.clamp(min=0).mean().sqrt()) if len(discarded) else None
    noise = noise_ml if noise_scale is None else noise_scale
    top = (eigenvalues[:latent_dim] - noise**2).clamp(min=0).sqrt()
    return ClosedForm(mean, eigenvectors[:, :latent_dim] * top, noise_ml)


def closed_form_w(x: torch.Tensor, latent_dim: int, noise_scale: float) -> torch.Tensor:
    """The lecture's maximum-likelihood axes: no mean, the noise known.

    ``W = U_K (Lambda_K - sigma^2 I)^(1/2)``, with ``U_K, Lambda_K`` the top K
    eigenvectors and eigenvalues of the second-moment matrix of ``x``.

    :param x: observations, (data_dim, N).
    :returns: W, (data_dim, latent_dim).
    """
    return closed_form(x, latent_dim, noise_scale, centre=False).w


def subspace_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of the largest principal angle between the column spaces of a and b.

    1 means the same subspace. For single columns it is ``|cos|`` of the angle
    between them, so the sign ambiguity of PCA does not matter.

    :param a: (D, K) and ``b``: (D, K).
    """
    qa, _ = torch.linalg.qr(a.double())
    qb, _ = torch.linalg.qr(b.double())
    return float(torch.linalg.svdvals(qa.T @ qb).min().clamp(max=1.0))
