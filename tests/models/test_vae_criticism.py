"""Criticism of a VAE: samples, reconstructions, manifold, codes and image checks."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

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
    assert all(check.name == name for name, check in checks.items())


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
            encoded_means(vae, x[:0]),
        ]
        checks, pixel_p = image_ppc(vae, x, num_replicates=3, batch_size=5)
    finally:
        torch.set_default_device(None)
    outputs += [pixel_p, *(check.replicated for check in checks.values())]
    assert all(t.device.type == "cpu" for t in outputs)
    assert all(torch.isfinite(t).all() for t in outputs)


def _message(call) -> str:
    with pytest.raises(UsageError) as error:
        call()
    return str(error.value)


def test_criticism_refusals_name_the_argument_and_the_value(device):
    # The whole message: which argument, what it must be, what it got.
    vae, x = _vae(device), _images(4, device)
    refusals = {
        "num_images must be a positive integer, got 0": lambda: sample_images(vae, 0),
        "grid_size must be a positive integer, got 0": lambda: latent_manifold(
            vae, grid_size=0
        ),
        "latent_manifold draws a 2-d latent space: it needs latent_dim == 2, got "
        "latent_dim = 3": lambda: latent_manifold(_vae(device, latent_dim=3)),
        "quantiles must satisfy 0 < low < high < 1, got (0.5, 0.5)": lambda: (
            latent_manifold(vae, quantiles=(0.5, 0.5))
        ),
        "quantiles must satisfy 0 < low < high < 1, got (0.5, 1.0)": lambda: (
            latent_manifold(vae, quantiles=(0.5, 1.0))
        ),
        "batch_size must be a positive integer, got 0": lambda: encoded_means(
            vae, x, batch_size=0
        ),
        "num_replicates must be a positive integer, got 0": lambda: image_ppc(
            vae, x, num_replicates=0
        ),
        "image_ppc needs at least 2 images (an sd over images), got 1": lambda: (
            image_ppc(vae, x[:1])
        ),
        "x must have shape (N, 64) for this VAE's (8, 8) images, got (2, 10)": lambda: (
            reconstruct(vae, torch.zeros(2, 10, device=device))
        ),
        "x must have shape (N, 64) for this VAE's (8, 8) images, got (64,)": lambda: (
            encoded_means(vae, torch.zeros(64, device=device))
        ),
    }
    for message, call in refusals.items():
        assert _message(call) == message
    assert _message(lambda: image_ppc(vae, x, batch_size=0)) == (
        "batch_size must be a positive integer, got 0"
    )


def test_criticize_vae_refusals_name_the_argument(tmp_path, device):
    vae, out = _vae(device), tmp_path / "out"
    x = _images(12, device)[:, :49]  # 7x7 images for an 8x8 VAE
    small = ImageData(x[:10], torch.zeros(10), x[10:], torch.zeros(2), (7, 7),
                      "threshold", "random")  # fmt: skip
    refusals = {
        "num_images must be a positive integer, got 0": lambda: criticize_vae(
            vae, _data(4, device), out, num_images=0
        ),
        "ppc_images must be a positive integer, got 0": lambda: criticize_vae(
            vae, _data(4, device), out, ppc_images=0
        ),
        "criticize_vae needs at least 2 test images, got 1": lambda: criticize_vae(
            vae, _data(1, device), out
        ),
        "data.test must have shape (N, 64) for this VAE's (8, 8) images, got "
        "(2, 49)": lambda: criticize_vae(vae, small, out),
    }
    for message, call in refusals.items():
        assert _message(call) == message


def test_default_sizes_of_the_criticism(device, monkeypatch):
    # The documented defaults: a 20 x 20 manifold, 100 replicated data sets (each
    # replicate here a copy of the data, to count them without running the VAE).
    import ppl_models.models.vae.criticize as criticize

    vae = _vae(device)
    assert latent_manifold(vae).shape == (400, P)
    draws = []

    def copy_of_the_data(model, guide, model_args, guide_args):
        draws.append(guide_args[0].shape[0])
        return SimpleNamespace(nodes={"x": {"value": guide_args[0]}})

    monkeypatch.setattr(criticize, "replay_guide", copy_of_the_data)
    checks, pixel_p = image_ppc(vae, _images(3, device))
    assert draws == [3] * 100
    assert all(check.replicated.shape == (100,) for check in checks.values())
    assert all(check.p_value == 0.5 for check in checks.values())  # all ties
    assert pixel_p.tolist() == [0.5] * P


def test_image_ppc_accepts_two_images(device):
    checks, pixel_p = image_ppc(_vae(device), _images(2, device), num_replicates=2)
    assert checks[SD_INK].replicated.shape == (2,) and pixel_p.shape == (P,)


def test_image_ppc_counts_the_pixels_of_every_batch(device):
    # Blank replicates; the data's only ink is in the first image (pixels 0-31) and
    # the last (pixels 32-63), in different batches: every pixel's mean is above
    # every replicate's, p = 0, whichever batch holds the ink.
    vae = _vae(device)
    vae.model.decoder = _ConstantDecoder(-30.0)
    x = torch.zeros(20, P, device=device)
    x[0, :32] = 1
    x[-1, 32:] = 1
    checks, pixel_p = image_ppc(vae, x, num_replicates=3, batch_size=7)
    assert pixel_p.tolist() == [0.0] * P
    assert checks[MEAN_INK].p_value == 0.0
    assert checks[MEAN_INK].observed == pytest.approx(1 / 20)


def test_encoded_means_of_no_images_or_one(device):
    vae = _vae(device, latent_dim=3)
    x = _images(1, device)
    none = encoded_means(vae, x[:0])
    assert none.shape == (0, 3) and none.device.type == device.type
    one = encoded_means(vae, x)
    with torch.no_grad():
        torch.testing.assert_close(one, vae.encode(x)[0])


def test_criticism_moves_host_images_to_the_vaes_device(device):
    vae = _vae(device)
    recon = reconstruct(vae, _images(3))  # images on the CPU
    assert recon.device.type == device.type and recon.shape == (3, P)


def _mosaic_of(ax):
    return ax.images[0].get_array()


def test_criticize_vae_figures_show_what_their_titles_say(tmp_path, monkeypatch):
    # The figures are captured instead of written as PNG; the check itself is
    # replaced by one with known results, so the summary is computable by hand.
    import ppl_models.models.vae.criticize as criticize
    from ppl_models.criticism import CheckResult

    saved, ppc_calls, sample_counts = {}, [], []
    monkeypatch.setattr(
        criticize, "save_figure", lambda fig, path: saved.setdefault(path, fig)
    )
    real_samples = criticize.sample_images

    def counted_samples(vae, num_images):
        sample_counts.append(num_images)
        return real_samples(vae, num_images)

    # With 20 replicates, mid-p-values are multiples of 1/40: 0.025 and 0.975 are
    # on the boundary and not extreme; only 0 and 1 are.
    pixel_p = torch.tensor([0.0, 0.025, 0.5, 0.975, 1.0, 0.5, 0.95, 0.05] * 8)
    checks = {
        name: CheckResult(name, 0.2, torch.linspace(0.0, 1.0, 20), p)
        for name, p in ((MEAN_INK, 0.3), (SD_INK, 0.9))
    }

    def fixed_ppc(vae, x, num_replicates=100):
        ppc_calls.append((x, num_replicates))
        return checks, pixel_p

    monkeypatch.setattr(criticize, "sample_images", counted_samples)
    monkeypatch.setattr(criticize, "image_ppc", fixed_ppc)
    vae, data = _vae(), _data(1001, None)
    out = tmp_path / "runs" / "criticism"  # a folder whose parent is missing too
    summary = criticize_vae(vae, data, out)  # the defaults

    names = ["samples.png", "reconstructions.png", "manifold.png",
             "latent_space.png", "ppc.png", "ppc_pixels.png"]  # fmt: skip
    assert summary["figures"] == names
    assert list(saved) == [out / name for name in names]
    assert out.is_dir()
    figure = {path.name: fig for path, fig in saved.items()}

    (samples,) = figure["samples.png"].axes
    assert samples.get_title() == (
        "Images decoded from prior draws (latent_dim 2, normal prior)"
    )
    assert sample_counts == [100]
    assert _mosaic_of(samples).shape == (10 * 9 - 1, 10 * 9 - 1)  # 10 x 10 images

    recon = figure["reconstructions.png"]
    assert recon.get_suptitle() == (
        "Test images and their reconstructions (z ~ q(z | x), mean image)"
    )
    top, bottom = recon.axes
    assert (top.get_ylabel(), bottom.get_ylabel()) == ("original", "reconstruction")
    first = _mosaic_of(top)[:, :8]  # the first of 16 test images
    assert first.tolist() == data.test[0].reshape(8, 8).tolist()
    assert _mosaic_of(top).shape == (8, 16 * 9 - 1)

    (manifold,) = figure["manifold.png"].axes
    assert manifold.get_title() == (
        "Learned manifold: z on a grid of prior quantiles (5%-95%)"
    )
    # The latent axes say which way each latent runs.
    assert manifold.get_xlabel() == "z1: 5% (left) to 95% (right) prior quantile"
    assert manifold.get_ylabel() == "z2: 5% (bottom) to 95% (top)"
    assert _mosaic_of(manifold).shape == (20 * 9 - 1, 20 * 9 - 1)

    latent = figure["latent_space.png"].axes[0]
    assert latent.get_title() == "Posterior means of 1001 test images"
    assert (latent.get_xlabel(), latent.get_ylabel()) == ("$z_1$", "$z_2$")
    points = torch.cat([torch.as_tensor(c.get_offsets()) for c in latent.collections])
    assert points.shape == (1001, 2)

    ppc = figure["ppc.png"]
    assert ppc.get_suptitle() == (
        "Posterior predictive checks: 1000 test images, 100 replicates"
    )
    assert [ax.get_xlabel() for ax in ppc.axes[:2]] == [MEAN_INK, SD_INK]
    ((checked, replicates),) = ppc_calls
    assert replicates == 100
    assert torch.equal(checked, data.test[:1000])

    pixels = figure["ppc_pixels.png"].axes[0]
    assert pixels.get_title() == "Per-pixel check of the mean pixel value"
    assert _mosaic_of(pixels).tolist() == pixel_p.reshape(8, 8).tolist()

    assert summary["ppc"] == {
        MEAN_INK: {"observed": 0.2, "p_value": 0.3},
        SD_INK: {"observed": 0.2, "p_value": 0.9},
    }
    assert summary["ppc_pixel_extreme_fraction"] == 2 / 8
    # Two test images are enough, an existing folder is reused, the count of
    # replicates asked for reaches the check and its figure.
    saved.clear()
    criticize_vae(vae, _data(2, None), out, num_images=4, num_replicates=7)
    assert ppc_calls[-1][1] == 7
    assert saved[out / "ppc.png"].get_suptitle() == (
        "Posterior predictive checks: 2 test images, 7 replicates"
    )


def test_criticism_warns_of_nothing():
    # Deprecation noise included: torch warns of some only once per process, so
    # every warning is made to show here.
    vae, x = _vae(), _images(6)
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sample_images(vae, 2)
            reconstruct(vae, x)
            latent_manifold(vae, grid_size=3)
            encoded_means(vae, x)
            image_ppc(vae, x, num_replicates=2)
    finally:
        torch.set_warn_always(False)
