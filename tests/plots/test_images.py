"""Image figures: built without pyplot, titled, tick-free image panels, PNG-ready."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure

from ppl_models.errors import UsageError
from ppl_models.plots import (
    plot_image_grid,
    plot_latent_scatter,
    plot_pixel_p_values,
    plot_reconstructions,
    save_figure,
)

SHAPE = (8, 6)
P = 48
PNG = b"\x89PNG\r\n\x1a\n"


def _images(n: int) -> torch.Tensor:
    return torch.rand(n, P, generator=torch.Generator().manual_seed(0))


def _saves(fig: Figure, tmp_path, name: str) -> None:
    assert isinstance(fig, Figure)
    path = save_figure(fig, tmp_path / f"{name}.png")
    assert path.read_bytes()[:8] == PNG


def _tick_free(ax) -> bool:
    return not ax.get_xticks().size and not ax.get_yticks().size


@pytest.mark.parametrize(("n", "ncols"), [(100, None), (7, 3), (5, 10)])
def test_image_grid_is_one_mosaic(tmp_path, n, ncols):
    fig = plot_image_grid(_images(n), SHAPE, ncols=ncols, title="samples")
    (ax,) = fig.axes
    (image,) = ax.images
    cols = min(n, ncols or math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    h, w = SHAPE
    assert image.get_array().shape == (rows * (h + 1) - 1, cols * (w + 1) - 1)
    assert ax.get_title() == "samples"
    assert _tick_free(ax)
    assert image.get_cmap().name.startswith("gray")
    _saves(fig, tmp_path, "grid")


def test_image_grid_places_images_row_major():
    images = torch.zeros(4, P)
    images[1] = 1.0  # top right of a 2x2 grid
    array = plot_image_grid(images, SHAPE, ncols=2, title="t").axes[0].images[0]
    array = array.get_array()
    h, w = SHAPE
    assert (array[:h, w + 1 :] == 1).all()
    assert (array[:h, :w] == 0).all() and (array[h + 1 :, :] == 0).all()


def test_image_grid_draws_into_given_axes(tmp_path):
    from ppl_models.plots import new_figure

    fig, axes = new_figure(2)
    for ax, n in zip(axes, (4, 9), strict=True):
        assert plot_image_grid(_images(n), SHAPE, title=f"{n}", ax=ax) is fig
    assert [ax.get_title() for ax in fig.axes] == ["4", "9"]
    assert all(len(ax.images) == 1 and _tick_free(ax) for ax in fig.axes)
    _saves(fig, tmp_path, "panels")


def test_image_grid_checks_its_input():
    with pytest.raises(UsageError, match="images"):
        plot_image_grid(torch.zeros(3, P + 1), SHAPE, title="t")
    with pytest.raises(UsageError, match="ncols"):
        plot_image_grid(_images(3), SHAPE, ncols=0, title="t")


@pytest.mark.parametrize("n", [5, 40])
def test_reconstructions_pair_rows(tmp_path, n):
    fig = plot_reconstructions(_images(n), _images(n), SHAPE, title="recon")
    pairs = math.ceil(n / 16)
    assert len(fig.axes) == 2 * pairs
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["original", "reconstruction"] * pairs
    assert all(_tick_free(ax) and len(ax.images) == 1 for ax in fig.axes)
    assert fig.get_suptitle() == "recon"
    _saves(fig, tmp_path, "recon")


def test_reconstructions_need_matching_shapes():
    with pytest.raises(UsageError, match="same shape"):
        plot_reconstructions(_images(3), _images(4), SHAPE, title="t")


def test_latent_scatter_colours_each_digit(tmp_path):
    means = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(300) % 10
    fig = plot_latent_scatter(means, labels, title="codes")
    (ax,) = fig.axes
    assert len(ax.collections) == 10
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        str(d) for d in range(10)
    ]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (
        "codes",
        "$z_1$",
        "$z_2$",
    )
    _saves(fig, tmp_path, "scatter")
    with pytest.raises(UsageError, match=r"\(N, 2\)"):
        plot_latent_scatter(torch.zeros(5, 3), torch.zeros(5), title="t")


def test_pixel_p_values_heat_map(tmp_path):
    p_values = torch.linspace(0, 1, P)
    fig = plot_pixel_p_values(p_values, SHAPE, title="pixels")
    ax, colorbar_ax = fig.axes
    (image,) = ax.images
    assert image.get_array().shape == SHAPE
    assert image.get_clim() == (0.0, 1.0)  # diverging map centred at 0.5
    assert ax.get_title() == "pixels" and _tick_free(ax)
    assert "p-value" in colorbar_ax.get_ylabel()
    _saves(fig, tmp_path, "pixels")
    with pytest.raises(UsageError, match="p_values"):
        plot_pixel_p_values(torch.zeros(P - 1), SHAPE, title="t")
