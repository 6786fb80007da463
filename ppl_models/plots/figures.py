"""Figures built without pyplot, so plotting works on any backend and in threads."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ppl_models.io.atomic import atomic_open


def new_figure(
    ncols: int = 1, nrows: int = 1, *, size: float = 4.0
) -> tuple[Figure, list]:
    """A figure with a grid of axes, ``size`` inches per panel: ``(fig, axes)``."""
    fig = Figure(figsize=(size * ncols, size * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG, atomically; returns the path."""
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)
    return Path(path)
