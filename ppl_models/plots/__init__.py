"""Figures for fits and their criticism; each function returns a matplotlib Figure."""

from ppl_models.plots.criticism import (
    plot_against_draws,
    plot_against_nuts,
    plot_ppc,
    plot_reliability,
    plot_replay_scatter,
)
from ppl_models.plots.figures import new_figure, save_figure
from ppl_models.plots.images import (
    plot_image_grid,
    plot_latent_scatter,
    plot_pixel_p_values,
    plot_reconstructions,
)
from ppl_models.plots.training import plot_loss_trace

__all__ = [
    "new_figure",
    "plot_against_draws",
    "plot_against_nuts",
    "plot_image_grid",
    "plot_latent_scatter",
    "plot_loss_trace",
    "plot_pixel_p_values",
    "plot_ppc",
    "plot_reliability",
    "plot_reconstructions",
    "plot_replay_scatter",
    "save_figure",
]
