"""Criticism of a VAE: samples, reconstructions, manifold, codes and image checks."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import ppl_models.inference  # noqa: F401  (sets pyro's module_local_params)
from ppl_models.data.images import ImageData
from ppl_models.errors import UsageError
from ppl_models.models.vae.criticize import (
    MEAN_INK,
    SD_INK,
    criticize_vae,
    encoded_means,
    image_ppc,
    latent_manifold,
    reconstruct,
    sample_images,
)
from ppl_models.models.vae.model import LIKELIHOODS, VAE, VAEConfig

SHAPE = (8, 8)
P = 64


def _vae(device=None, latent_dim: int = 2, **options) -> VAE:
    torch.manual_seed(0)
    config = VAEConfig(
        image_shape=SHAPE, latent_dim=latent_dim, hidden_dims=(16,), **options
    )
    return VAE(config).to(device or "cpu")


def _images(n: int, device=None, p: float = 0.3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.bernoulli(torch.full((n, P), p), generator=generator).to(
        device or "cpu"
    )


def _in_unit_interval(t: torch.Tensor) -> bool:
    return bool(((t >= 0) & (t <= 1)).all())


class _FixedEncoder(nn.Module):
    """q(z | x) = Normal(loc, 1e-6): the guide's latents are known."""

    def __init__(self, loc: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("loc", loc)

    def forward(self, x):
        return self.loc[: x.shape[0]], torch.full_like(self.loc[: x.shape[0]], 1e-6)


class _ConstantDecoder(nn.Module):
    """Logits ``value`` for every pixel, whatever z."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, z):
        return torch.full((*z.shape[:-1], P), self.value, device=z.device)


class _CoordinateDecoder(nn.Module):
    """Pixel 0 has logit z1 and pixel 1 has logit z2; the rest 0."""

    def forward(self, z):
        logits = torch.zeros(*z.shape[:-1], P, device=z.device)
        logits[..., :2] = z
        return logits


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_sample_images_are_pixel_means_in_the_unit_interval(device, likelihood):
    vae = _vae(device, likelihood=likelihood)
    images = sample_images(vae, 7)
    assert images.shape == (7, P)
    assert images.device.type == device.type
    assert _in_unit_interval(images)
    assert not images.requires_grad


def test_sample_images_refuses_a_bad_count(device):
    with pytest.raises(UsageError, match="num_images"):
        sample_images(_vae(device), 0)


def test_reconstruct_decodes_the_guides_latents(device):
    vae = _vae(device)
    loc = torch.tensor([[1.5, -0.5], [-2.0, 0.3], [0.0, 0.0]], device=device)
    vae.guide.encoder = _FixedEncoder(loc)
    x = _images(3, device)
    recon = reconstruct(vae, x)
    assert recon.shape == (3, P)
    assert _in_unit_interval(recon)
    with torch.no_grad():
        expected = torch.sigmoid(vae.model.decoder(loc))
    torch.testing.assert_close(recon, expected, atol=1e-4, rtol=0)


def test_reconstruct_checks_the_image_size(device):
    with pytest.raises(UsageError, match=r"\(N, 64\)"):
        reconstruct(_vae(device), torch.zeros(2, 10, device=device))


def test_latent_manifold_is_row_major_with_z2_decreasing_downward(device):
    vae = _vae(device)
    images = latent_manifold(vae, grid_size=5)
    assert images.shape == (25, P)
    assert _in_unit_interval(images)
    vae.model.decoder = _CoordinateDecoder()
    grid = latent_manifold(vae, grid_size=4, quantiles=(0.1, 0.9)).reshape(4, 4, P)
    z1, z2 = torch.logit(grid[..., 0]), torch.logit(grid[..., 1])
    assert (z1.diff(dim=1) > 0).all() and (z1.diff(dim=0).abs() < 1e-5).all()
    assert (z2.diff(dim=0) < 0).all() and (z2.diff(dim=1).abs() < 1e-5).all()
    edge = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.9)))
    assert float(z1[0, -1]) == pytest.approx(edge, abs=1e-4)
    assert float(z2[0, 0]) == pytest.approx(edge, abs=1e-4)
    assert float(z2[-1, 0]) == pytest.approx(-edge, abs=1e-4)


def test_latent_manifold_needs_a_2d_latent_space(device):
    with pytest.raises(UsageError, match="latent_dim"):
        latent_manifold(_vae(device, latent_dim=3))
    with pytest.raises(UsageError, match="quantiles"):
        latent_manifold(_vae(device), quantiles=(0.0, 0.5))


def test_encoded_means_match_the_encoder_in_batches(device):
    vae = _vae(device, latent_dim=3)
    x = _images(23, device)
    means = encoded_means(vae, x, batch_size=5)
    assert means.shape == (23, 3)
    with torch.no_grad():
        torch.testing.assert_close(means, vae.encode(x)[0])


def test_image_ppc_gives_p_values_in_the_unit_interval(device):
    vae = _vae(device)
    x = _images(30, device)
    checks, pixel_p = image_ppc(vae, x, num_replicates=12, batch_size=7)
    assert set(checks) == {MEAN_INK, SD_INK}
    for check in checks.values():
        assert check.replicated.shape == (12,)
        assert check.replicated.device.type == "cpu"
        assert 0.0 <= check.p_value <= 1.0
        above = (check.replicated > check.observed).double().mean()
        ties = (check.replicated == check.observed).double().mean()
        assert check.p_value == pytest.approx(float(above + ties / 2))
    ink = x.mean(-1)
    assert checks[MEAN_INK].observed == pytest.approx(float(ink.mean()))
    assert checks[SD_INK].observed == pytest.approx(float(ink.std()))
    assert pixel_p.shape == (P,) and pixel_p.device.type == "cpu"
    assert _in_unit_interval(pixel_p)


def test_image_ppc_fails_a_model_that_draws_no_ink(device):
    # Decoder logits of -30: replicated images are blank, the data are half ink.
    vae = _vae(device)
    vae.model.decoder = _ConstantDecoder(-30.0)
    checks, pixel_p = image_ppc(vae, _images(40, device, p=0.5), num_replicates=10)
    assert checks[MEAN_INK].p_value == 0.0
    assert (checks[MEAN_INK].replicated == 0).all()
    assert (pixel_p == 0).all()


def test_image_ppc_gives_blank_pixels_a_mid_p_of_one_half(device):
    # Replicates are blank; so are the data's first 8 pixels (ties: p = 1/2), while
    # the other pixels hold ink the model never draws (p = 0).
    vae = _vae(device)
    vae.model.decoder = _ConstantDecoder(-30.0)
    x = _images(40, device, p=0.5)
    x[:, :8] = 0
    x[0, 8:] = 1  # every other pixel has ink in at least one image
    checks, pixel_p = image_ppc(vae, x, num_replicates=6)
    assert pixel_p[:8].tolist() == [0.5] * 8
    assert (pixel_p[8:] == 0).all()
    assert checks[SD_INK].p_value == 0.0


def test_image_ppc_refuses_a_single_image(device):
    with pytest.raises(UsageError, match="at least 2"):
        image_ppc(_vae(device), _images(1, device))


def _data(n_test: int, device) -> ImageData:
    x = _images(n_test + 10, device)
    labels = torch.arange(n_test + 10, device=device) % 10
    return ImageData(
        train=x[:10],
        train_labels=labels[:10],
        test=x[10:],
        test_labels=labels[10:],
        image_shape=SHAPE,
        binarize="threshold",
        name="random",
    )


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_criticize_vae_writes_the_figures_it_lists(tmp_path, device, latent_dim):
    vae = _vae(device, latent_dim=latent_dim)
    out = tmp_path / "criticism"
    summary = criticize_vae(
        vae, _data(40, device), out, num_images=9, ppc_images=25, num_replicates=8
    )
    assert set(summary) == {"ppc", "ppc_pixel_extreme_fraction", "figures"}
    expected = {"samples.png", "reconstructions.png", "ppc.png", "ppc_pixels.png"}
    if latent_dim == 2:
        expected |= {"manifold.png", "latent_space.png"}
    assert set(summary["figures"]) == expected
    assert {p.name for p in out.iterdir()} == expected  # no stray temporary files
    for name in expected:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(summary["ppc"]) == {MEAN_INK, SD_INK}
    assert 0.0 <= summary["ppc_pixel_extreme_fraction"] <= 1.0
    json.dumps(summary)  # ready for summary.json


def test_criticism_creates_no_tensor_on_the_default_device():
    # With "meta" as the default device, any tensor made without device= would be
    # on meta and fail to compute; everything must stay on the VAE's device (CPU).
    vae, x = _vae(), _images(12)
    torch.set_default_device("meta")
    try:
        outputs = [
            sample_images(vae, 4),
            reconstruct(vae, x),
            latent_manifold(vae, grid_size=3),
            encoded_means(vae, x, batch_size=5),
        ]
        checks, pixel_p = image_ppc(vae, x, num_replicates=3, batch_size=5)
    finally:
        torch.set_default_device(None)
    outputs += [pixel_p, *(check.replicated for check in checks.values())]
    assert all(t.device.type == "cpu" for t in outputs)
    assert all(torch.isfinite(t).all() for t in outputs)
