"""How far PPCA's joint MAP, collapsed MAP and mean-field fits are from the posterior
of ``w``, with NUTS as the gold standard.

The default experiment (N = 5000, D = 2, K = 1, sigma = 0.5 known, no mean, seed 0)
is fitted by each method for 1000 and 5000 steps. NUTS samples ``p(w | x)`` with
``z`` integrated out (``x_n ~ Normal(0, w wᵀ + sigma² I)``, the prior
``w ~ Normal(0, 2)``): 1000 draws after 500 warm-up steps, one chain. Each fit's
``|w|`` is held against the maximum-likelihood length (Tipping and Bishop's closed
form), its ``w`` against the NUTS mean in NUTS sds, and mean-field's ``w_scale``
against the NUTS sds.

A second table fits scikit-learn's wine data (178 points, 13 features), standardized
and shifted by a mean of 3 to 9 per feature, with the mean and the noise scale
learned, K = 1 to 3: each method's subspace cosine with the closed form and its noise
scale against sigma_ML. Prints both tables; takes a few minutes on 2 CPU cores.

    python benchmarks/ppca_posterior.py
"""

from __future__ import annotations

import numpy as np
import pyro
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

from ppl_models.models.ppca import closed_form_w, fit_ppca, subspace_cosine
from ppl_models.models.ppca.nuts import compare, sample_w


def main() -> None:
    fits = {
        (inference, steps): fit_ppca(
            inference=inference, steps=steps, device="cpu", progress=False
        )
        for inference in ("map", "collapsed", "meanfield")
        for steps in (1000, 5000)
    }
    reference = fits["collapsed", 1000]
    x = reference.x
    w_ml = closed_form_w(x, 1, 0.5)
    pyro.set_rng_seed(0)
    posterior = sample_w(x, reference.model, w_ml, num_samples=1000, warmup_steps=500)
    nuts = compare(posterior, w_ml, None)
    sds = [round(s[0], 4) for s in nuts["nuts_sd"]]
    print(f"|w| closed form (ML): {float(w_ml.norm()):.4f}")
    print(f"NUTS: mean {nuts['nuts_mean']}, sd {sds}")
    print(f"NUTS: R-hat {posterior.r_hat:.4f}, n_eff {posterior.n_eff:.0f}")
    print()
    print(
        "| inference | steps | abs(w) | abs(w) / ML | (w - NUTS mean) / NUTS sd "
        "| w_scale / NUTS sd |"
    )
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for (inference, steps), fit in fits.items():
        numbers = compare(posterior, fit.w, fit.w_scale)
        diff = ", ".join(f"{d[0]:+.2f}" for d in numbers["mean_diff_in_sds"])
        ratio = "-"
        if "sd_ratio" in numbers:
            ratio = ", ".join(f"{r[0]:.2f}" for r in numbers["sd_ratio"])
        length = float(fit.w.norm())
        print(
            f"| {inference} | {steps} | {length:.3f} "
            f"| {length / float(w_ml.norm()):.3f}"
            f" | {diff} | {ratio} |"
        )


def wine_table() -> None:
    x = StandardScaler().fit_transform(load_wine().data).astype(np.float32)
    x = x + (3.0 * (1 + np.arange(x.shape[1]) % 3)).astype(np.float32)
    runs = [("collapsed", 200, 0.05), ("map", 200, 0.05)]
    runs += [("meanfield", 1000, 0.05), ("meanfield", 1000, 0.02)]
    print()
    print("| inference | steps | lr | K | cosine with ML | sigma / sigma_ML |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for inference, steps, lr in runs:
        for k in (1, 2, 3):
            fit = fit_ppca(
                x, inference=inference, latent_dim=k, steps=steps, lr=lr,
                device="cpu", progress=False,
            )  # fmt: skip
            exact = fit.closed_form
            cosine = subspace_cosine(fit.w, exact.w)
            ratio = fit.noise_scale / exact.noise_scale_ml
            print(
                f"| {inference} | {steps} | {lr} | {k} | {cosine:.5f} | {ratio:.4f} |"
            )


if __name__ == "__main__":
    main()
    wine_table()
