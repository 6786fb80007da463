"""PPCA's own criticism: replayed latents, its predictive-check statistics, and the
fit held against NUTS and the closed form.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ppl_models.models.ppca import nuts
from ppl_models.plots import (
    plot_against_draws,
    plot_ppc,
    plot_replay_scatter,
    save_figure,
)

if TYPE_CHECKING:
    from ppl_models.models.ppca.fit import PPCAFit


def ppca_statistics(data_dim: int) -> dict:
    """Test statistics of a data set in the model's layout (data_dim, N)."""
    stats = {
        f"variance of x{d + 1}": (lambda x, d=d: x[d].var()) for d in range(data_dim)
    }
    stats["largest eigenvalue of cov(x)"] = lambda x: torch.linalg.eigvalsh(
        torch.cov(x)
    )[-1]
    return stats


def criticize(fit: PPCAFit, out_dir: Path) -> dict[str, Any]:
    """Replay inferred latents and run the predictive checks: write ``replay.png``
    and ``ppc.png`` into ``out_dir`` and return ``replay_cov_rel_error`` and
    ``ppc``; with ``against_nuts``, also ``vs_nuts`` and ``vs_nuts.png`` (see
    :func:`against_nuts`). Its draws are seeded already (see
    ``FullBatchFit.criticize``), from a
    seed derived from the run's, never the stream that simulated the data.
    """
    generated = fit.replay()
    figure = plot_replay_scatter(
        fit.x.T,
        {f"replayed ({fit.inference})": generated.T},
        title=f"PPCA, {fit.inference}: observed vs replayed latents",
    )
    save_figure(figure, out_dir / "replay.png")
    checks = fit.posterior_predictive_check(num_samples=fit.config.ppc_samples)
    title = f"PPCA, {fit.inference}: posterior predictive checks"
    save_figure(plot_ppc(checks, title=title), out_dir / "ppc.png")
    out = {
        "replay_cov_rel_error": fit.replay_cov_rel_error(generated),
        "ppc": {name: check.as_dict() for name, check in checks.items()},
    }
    if fit.config.against_nuts:
        out["vs_nuts"] = against_nuts(fit, out_dir)
    return out


def against_nuts(fit: PPCAFit, out_dir: Path) -> dict[str, Any]:
    """Sample the posterior of ``w`` by NUTS (``z`` integrated out, at the fit's
    ``mu`` and sigma), hold the fit against it and write ``vs_nuts.png``.

    :returns: :func:`ppl_models.models.ppca.nuts.compare`'s numbers.
    """
    posterior = nuts.sample_w(
        fit.x,
        fit.model,
        fit.w,
        num_samples=fit.config.nuts_samples,
        warmup_steps=fit.config.nuts_warmup,
    )
    numbers = nuts.compare(posterior, fit.w, fit.w_scale)
    d, k = fit.w.shape
    names = [f"$w_{{{i + 1}{j + 1}}}$" for i in range(d) for j in range(k)]
    flat = {"closed form (ML)": nuts.align(fit.w_closed_form[None], fit.w)[0]}
    normals = {}
    if fit.w_scale is None:
        flat = {f"{fit.inference} point": fit.w, **flat}
    else:
        normals = {"mean-field q": (fit.w.flatten(), fit.w_scale.flatten())}
    figure = plot_against_draws(
        posterior.draws.flatten(1),
        names,
        normals=normals,
        points={label: value.flatten() for label, value in flat.items()},
        title=f"PPCA, {fit.inference}: w against NUTS (z integrated out)",
        draws_label="NUTS draws",
    )
    save_figure(figure, out_dir / "vs_nuts.png")
    return numbers
