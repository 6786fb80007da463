"""Figures of images: tiled samples, reconstructions, latent codes, per-pixel checks.

Images arrive flattened, ``(N, P)`` with ``P = H * W`` and pixel values in [0, 1],
on any device; they are copied to the CPU here. Every image panel is drawn in gray
without ticks, and a whole grid is a single ``imshow`` of one mosaic array.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ppl_models.errors import UsageError
from ppl_models.plots.figures import new_figure

#: Inches per image in a mosaic, and the largest side of a mosaic figure.
_INCHES_PER_IMAGE = 0.7
_MAX_INCHES = 10.0
#: Most images in one row of :func:`plot_reconstructions`.
_MAX_RECONSTRUCTION_COLUMNS = 16
#: Separators between tiles: NaN in the mosaic, drawn in this colour.
_GRAY = matplotlib.colormaps["gray"].with_extremes(bad="0.55")


def _as_images(images: torch.Tensor, image_shape: tuple[int, int], name: str):
    """``images`` (N, H*W) as a float numpy array (N, H, W) on the CPU."""
    h, w = (int(s) for s in image_shape)
    if images.dim() != 2 or images.shape[0] == 0 or images.shape[1] != h * w:
        raise UsageError(
            f"{name} must have shape (N, {h * w}) with N >= 1 for {h}x{w} images, "
            f"got {tuple(images.shape)}"
        )
    return images.detach().to("cpu", torch.float32).numpy().reshape(-1, h, w)


def _mosaic(images: np.ndarray, ncols: int, nrows: int) -> np.ndarray:
    """Tile (N, H, W) images row-major into one array, NaN one-pixel separators."""
    n, h, w = images.shape
    out = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), np.nan)
    for index in range(n):
        row, col = divmod(index, ncols)
        out[row * (h + 1) : row * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = (
            images[index]
        )
    return out


def _figure_for(width: float, height: float, extra_height: float = 0.6) -> Figure:
    """A constrained-layout figure scaled so that its longer side fits the page."""
    scale = min(_INCHES_PER_IMAGE, _MAX_INCHES / max(width, height))
    size = (max(width * scale, 2.5), height * scale + extra_height)
    return Figure(figsize=size, layout="constrained")


def _show(ax, mosaic: np.ndarray) -> None:
    ax.imshow(mosaic, cmap=_GRAY, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_image_grid(
    images: torch.Tensor,
    image_shape: tuple[int, int],
    *,
    ncols: int | None = None,
    title: str,
    xlabel: str | None = None,
    ylabel: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Tile ``images`` (N, H*W) row-major, ``ncols`` per row (default about sqrt N).

    :param xlabel: what changes from left to right (a manifold's first latent).
    :param ylabel: what changes from top to bottom.
    :param ax: draw into these axes (a panel of a larger figure) instead of a new
        figure; the axes' figure is returned.
    """
    stack = _as_images(images, image_shape, "images")
    n = len(stack)
    ncols = math.ceil(math.sqrt(n)) if ncols is None else ncols
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise UsageError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    h, w = stack.shape[1:]
    if ax is None:
        ax = _figure_for(ncols * w / max(h, w), nrows * h / max(h, w)).subplots()
    _show(ax, _mosaic(stack, ncols, nrows))
    ax.set_title(title, wrap=True)  # a narrow grid's title on several lines
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    return ax.get_figure()


def plot_reconstructions(
    originals: torch.Tensor,
    reconstructions: torch.Tensor,
    image_shape: tuple[int, int],
    *,
    title: str,
) -> Figure:
    """Originals above their reconstructions, in row pairs of at most 16 images."""
    top = _as_images(originals, image_shape, "originals")
    bottom = _as_images(reconstructions, image_shape, "reconstructions")
    if top.shape != bottom.shape:
        raise UsageError(
            "originals and reconstructions must have the same shape, got "
            f"{tuple(originals.shape)} and {tuple(reconstructions.shape)}"
        )
    n, h, w = top.shape
    ncols = min(n, _MAX_RECONSTRUCTION_COLUMNS)
    pairs = math.ceil(n / ncols)
    fig = _figure_for(ncols * w / max(h, w) + 1.5, 2 * pairs * h / max(h, w))
    axes = fig.subplots(2 * pairs, 1, squeeze=False)[:, 0]
    for pair in range(pairs):
        chunk = slice(pair * ncols, (pair + 1) * ncols)
        for ax, stack, label in (
            (axes[2 * pair], top[chunk], "original"),
            (axes[2 * pair + 1], bottom[chunk], "reconstruction"),
        ):
            _show(ax, _mosaic(stack, ncols, 1))
            ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return fig


def plot_latent_scatter(
    means: torch.Tensor, labels: torch.Tensor, *, title: str
) -> Figure:
    """Encoded means (N, 2), one colour per digit label (N,) from ``tab10``."""
    if means.dim() != 2 or means.shape[1] != 2:
        raise UsageError(
            f"means must have shape (N, 2): plot_latent_scatter draws a 2-d latent "
            f"space, got {tuple(means.shape)}"
        )
    if labels.shape != means.shape[:1]:
        raise UsageError(
            f"labels must have shape ({means.shape[0]},), got {tuple(labels.shape)}"
        )
    points = means.detach().to("cpu", torch.float32).numpy()
    classes = labels.detach().cpu().long().numpy()
    colours = matplotlib.colormaps["tab10"]
    fig, (ax,) = new_figure(size=5.5)
    size = 4 if len(points) > 1000 else 10
    for label in np.unique(classes):
        mine = points[classes == label]
        ax.scatter(
            mine[:, 0],
            mine[:, 1],
            s=size,
            alpha=0.6,
            color=colours(int(label) % 10),
            label=str(label),
        )
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
    if len(points):
        ax.legend(
            title="digit",
            markerscale=2.5,
            fontsize="small",
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
        )
    ax.grid(alpha=0.3)
    return fig


def plot_pixel_p_values(
    p_values: torch.Tensor, image_shape: tuple[int, int], *, title: str
) -> Figure:
    """Per-pixel p-values (H*W,) as a heat map, 0.5 white, 0 and 1 saturated."""
    (grid,) = _as_images(p_values.reshape(1, -1), image_shape, "p_values")
    fig, (ax,) = new_figure(size=4.5)
    image = ax.imshow(grid, cmap="RdBu_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    colorbar = fig.colorbar(image, ax=ax, shrink=0.85)
    colorbar.set_label("posterior predictive p-value (mid-p)")
    return fig
