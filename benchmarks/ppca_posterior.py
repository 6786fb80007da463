"""How far PPCA's MAP and mean-field fits are from the posterior of ``w``.

The default experiment (N = 5000, D = 2, K = 1, sigma = 0.5 known, seed 0) is fitted
by joint MAP and by mean-field VI for 1000 and 5000 steps. Each fit's ``|w|`` is held
against the maximum-likelihood length (Tipping and Bishop's closed form), and the
mean-field posterior sd of ``w`` against a Laplace approximation of the posterior with
``z`` integrated out: ``x_n ~ Normal(0, w w^T + sigma^2 I)``, the prior
``w ~ Normal(0, 2)``, the mode found by L-BFGS, the sd from the inverse Hessian of the
negative log posterior. With N = 5000 points in two dimensions the posterior of ``w``
is close to Gaussian, so the Laplace sd is a fair yardstick (a NUTS reference is
still to come). Prints a table; takes about half a minute on 2 CPU cores.

    python benchmarks/ppca_posterior.py
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from ppl_models.models.ppca import closed_form_w, fit_ppca


def log_posterior(w: torch.Tensor, x: torch.Tensor, noise: float) -> torch.Tensor:
    """log p(w | x) up to a constant, z integrated out; ``w`` (D, K), ``x`` (D, N)."""
    d = x.shape[0]
    marginal = dist.LowRankMultivariateNormal(
        torch.zeros(d, dtype=x.dtype), w, torch.full((d,), noise**2, dtype=x.dtype)
    )
    prior = dist.Normal(0.0, 2.0).log_prob(w).sum()
    return marginal.log_prob(x.T).sum() + prior


def laplace(x: torch.Tensor, noise: float, start: torch.Tensor) -> tuple:
    """The posterior mode of ``w`` (D, K) and the Laplace covariance of its
    entries, (D*K, D*K), in float64."""
    w = start.clone().double().requires_grad_(True)
    x = x.double()
    optimizer = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = -log_posterior(w, x, noise)
        loss.backward()
        return loss

    optimizer.step(closure)
    mode = w.detach()
    hessian = torch.autograd.functional.hessian(
        lambda v: -log_posterior(v.reshape(mode.shape), x, noise), mode.reshape(-1)
    )
    return mode, torch.linalg.inv(hessian)


def main() -> None:
    noise = 0.5
    rows = []
    for inference in ("map", "meanfield"):
        for steps in (1000, 5000):
            fit = fit_ppca(
                inference=inference, steps=steps, device="cpu", progress=False
            )
            scale = fit.w_scale
            rows.append((inference, steps, fit.w, scale))
    x = fit.x
    w_ml = closed_form_w(x, 1, noise)
    mode, covariance = laplace(x, noise, w_ml)
    sd = covariance.diagonal().sqrt()
    axis = mode.reshape(-1) / mode.norm()  # the sd of |w|: along w itself
    along = float((axis @ covariance @ axis).sqrt())
    print(f"|w| closed form (ML): {float(w_ml.norm()):.4f}")
    print(f"|w| Laplace mode: {float(mode.norm()):.4f}, sd of |w|: {along:.4f}")
    print(f"Laplace sd per entry: {[round(float(s), 4) for s in sd]}")
    print()
    print("| inference | steps | abs w | abs w / ML | w_scale per entry |")
    print("| --- | ---: | ---: | ---: | --- |")
    for inference, steps, w, scale in rows:
        shown = "-" if scale is None else str([round(float(s), 4) for s in scale])
        ratio = float(w.norm() / w_ml.norm())
        print(
            f"| {inference} | {steps} | {float(w.norm()):.4f} | {ratio:.3f} | {shown} |"
        )


if __name__ == "__main__":
    main()
