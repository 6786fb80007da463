"""Plots of how a fit progressed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ppl_models.plots.figures import new_figure


def plot_loss_trace(
    traces: Mapping[str, Sequence[float]],
    *,
    title: str = "Training loss",
    xlabel: str = "step",
    ylabel: str = "loss (negative ELBO)",
    log_y: bool = False,
) -> Figure:
    """One line per named loss trace, e.g. ``{"map": [...], "mean-field": [...]}``."""
    fig, (ax,) = new_figure(size=4.5)
    for label, values in traces.items():
        steps = range(1, len(values) + 1)
        ax.plot(steps, values, label=label, marker="o" if len(values) < 30 else None)
    if log_y:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and epochs count
    if len(traces) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return fig
