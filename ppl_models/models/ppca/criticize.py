"""PPCA's own criticism: replayed latents and its predictive-check statistics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ppl_models.plots import plot_ppc, plot_replay_scatter, save_figure

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
    ``ppc``. Its draws are seeded already (see ``FullBatchFit.criticize``), from a
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
    return {
        "replay_cov_rel_error": fit.replay_cov_rel_error(generated),
        "ppc": {name: check.as_dict() for name, check in checks.items()},
    }
