"""Held-out bounds of a VAE: the log-weights' terms, the defaults, the memory
bound on each pass and the fallback when the device runs out of memory."""

from __future__ import annotations

import pytest
import torch

import ppl_models.models.vae.evaluate as evaluate
from ppl_models.errors import ResourceError, UsageError
from ppl_models.models.vae import VAE, VAEConfig
from ppl_models.models.vae.evaluate import (
    evaluate_bounds,
    evaluate_elbo,
    log_weight_parts,
)

P = 64


def small_vae() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(image_shape=(8, 8), latent_dim=3, hidden_dims=(16,)))


def test_log_weight_parts_are_the_densities_of_the_guides_draws():
    # Recomputed with torch.distributions from the same random draws: z ~ q(z | x)
    # for each of K samples of each image, then log p(x | z), log p(z), log q(z | x).
    vae, x = small_vae(), torch.rand(5, P).round()
    torch.manual_seed(7)
    parts = log_weight_parts(vae, x, 3)
    assert {key: value.shape for key, value in parts.items()} == {
        "log_lik": (3, 5), "log_prior": (3, 5), "log_q": (3, 5)
    }  # fmt: skip
    torch.manual_seed(7)
    with torch.no_grad():
        loc, scale = vae.encode(x)
        q = torch.distributions.Normal(loc.expand(3, 5, 3), scale.expand(3, 5, 3))
        z = q.rsample()
        logits = vae.model.decoder(z)
    normal = torch.distributions.Normal(0.0, 1.0)
    bernoulli = torch.distributions.Bernoulli(logits=logits)
    torch.testing.assert_close(parts["log_q"], q.log_prob(z).sum(-1))
    torch.testing.assert_close(parts["log_prior"], normal.log_prob(z).sum(-1))
    torch.testing.assert_close(parts["log_lik"], bernoulli.log_prob(x).sum(-1))
    assert log_weight_parts(vae, x)["log_q"].shape == (1, 5)  # one draw by default


def test_evaluate_bounds_refuses_no_samples_naming_the_argument():
    with pytest.raises(UsageError) as error:
        evaluate_bounds(small_vae(), torch.zeros(2, P), num_samples=0)
    assert str(error.value) == "num_samples must be a positive integer, got 0"


def test_evaluate_bounds_draws_one_sample_by_default():
    # With one importance sample the IWAE bound is the ELBO; with more it exceeds it.
    vae, x = small_vae(), torch.rand(6, P).round()
    bounds = evaluate_bounds(vae, x)
    assert bounds["iwae"] == pytest.approx(bounds["elbo"], abs=1e-5)
    several = evaluate_bounds(vae, x, 4)
    assert several["iwae"] > several["elbo"] + 1e-3


class _RecordedParts:
    """A stand-in for ``log_weight_parts`` with log-weights that depend on the
    image only, that records each pass's (images, samples) and raises
    ``torch.OutOfMemoryError`` for a pass holding more than ``capacity`` decoder
    outputs, as a device would.
    """

    def __init__(self, capacity: float = float("inf")) -> None:
        self.capacity = capacity
        self.passes: list[tuple[int, int]] = []
        self.failed: list[tuple[int, int]] = []
        self.samples_per_image = torch.zeros(0)

    def __call__(self, vae, x, num_samples=1):
        if x.shape[0] * num_samples * P > self.capacity:
            self.failed.append((x.shape[0], num_samples))
            raise torch.OutOfMemoryError("out of memory (simulated)")
        self.passes.append((x.shape[0], num_samples))
        index = x[:, 0].long()
        self.samples_per_image.index_add_(
            0, index, torch.full((x.shape[0],), float(num_samples), device=x.device)
        )
        log_lik = (-x.sum(-1)).expand(num_samples, x.shape[0])
        zero = torch.zeros_like(log_lik)
        return {"log_lik": log_lik, "log_prior": zero, "log_q": zero}


def _indexed_images(n: int) -> torch.Tensor:
    """Images whose first pixel is their index, the rest random in [0, 1]."""
    x = torch.rand(n, P)
    x[:, 0] = torch.arange(n, dtype=torch.float32)
    return x


@pytest.mark.parametrize("max_elements", [P, P * 3, P * 5 + 10, P * 12])
def test_no_pass_holds_more_decoder_outputs_than_max_elements(
    monkeypatch, max_elements
):
    # The memory bound of the module docstring, down to one image and sample per
    # pass; every image still gets all its samples, each exactly once.
    parts = _RecordedParts()
    parts.samples_per_image = torch.zeros(7)
    monkeypatch.setattr(evaluate, "log_weight_parts", parts)
    x = _indexed_images(7)
    bounds = evaluate_bounds(None, x, num_samples=4, max_elements=max_elements)
    assert all(b * k * P <= max_elements for b, k in parts.passes), parts.passes
    assert parts.samples_per_image.tolist() == [4.0] * 7
    assert bounds["elbo"] == pytest.approx(float(-x.sum(-1).mean()), rel=1e-6)


def test_out_of_memory_halves_the_pass_until_it_fits(monkeypatch):
    # A device that holds at most 3 images' worth of decoder outputs: passes of
    # 16 x 64, 8 x 64 and 4 x 64 outputs fail, 2 x 64 fits; the bounds are unchanged.
    parts = _RecordedParts(capacity=P * 3)
    parts.samples_per_image = torch.zeros(5)
    monkeypatch.setattr(evaluate, "log_weight_parts", parts)
    x = _indexed_images(5)
    bounds = evaluate_bounds(None, x, num_samples=4, max_elements=P * 16)
    assert [b * k for b, k in parts.failed] == [16, 8, 4]
    assert all(b * k <= 2 for b, k in parts.passes)
    assert parts.samples_per_image.tolist() == [4.0] * 5
    expected = float(-x.sum(-1).mean())
    assert bounds["elbo"] == pytest.approx(expected, rel=1e-6)
    assert bounds["iwae"] == pytest.approx(expected, rel=1e-6)
    assert bounds["distortion"] == pytest.approx(-expected, rel=1e-6)


def test_out_of_memory_for_one_image_and_sample_is_a_resource_error(monkeypatch):
    # Halving stops at one image and one sample: that pass is tried once, then the
    # error says that even it does not fit.
    parts = _RecordedParts(capacity=0)
    monkeypatch.setattr(evaluate, "log_weight_parts", parts)
    with pytest.raises(ResourceError) as error:
        evaluate_bounds(None, _indexed_images(5), max_elements=P * 4)
    assert str(error.value) == "out of memory evaluating a single image and sample"
    assert parts.failed == [(4, 1), (2, 1), (1, 1)]


def test_out_of_memory_frees_the_device_cache_on_cuda_only(monkeypatch, device):
    # After a failed pass on a GPU the cached blocks go back to the driver before
    # the smaller pass; on the CPU there is no CUDA cache to touch.
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    parts = _RecordedParts(capacity=P)
    parts.samples_per_image = torch.zeros(2, device=device)
    monkeypatch.setattr(evaluate, "log_weight_parts", parts)
    evaluate_bounds(None, _indexed_images(2).to(device), max_elements=P * 2)
    assert len(parts.failed) == 1
    assert len(emptied) == (1 if device.type == "cuda" else 0)


def test_evaluate_elbo_is_the_one_sample_elbo_within_max_elements(monkeypatch):
    parts = _RecordedParts()
    parts.samples_per_image = torch.zeros(5)
    monkeypatch.setattr(evaluate, "log_weight_parts", parts)
    x = _indexed_images(5)
    elbo = evaluate_elbo(None, x, max_elements=P * 2)
    assert elbo == pytest.approx(float(-x.sum(-1).mean()), rel=1e-6)
    assert parts.passes == [(2, 1), (2, 1), (1, 1)]
    assert parts.samples_per_image.tolist() == [1.0] * 5


@pytest.mark.parametrize("max_elements", [P * 7, P * 1000])
def test_iwae_se_is_the_standard_error_of_the_per_image_bounds(
    monkeypatch, max_elements
):
    # Log-weights that depend on the image only: each image's bound is -sum(x), so
    # the standard error is their sample sd over sqrt(M), across passes and blocks.
    parts = _RecordedParts()
    parts.samples_per_image = torch.zeros(1100)
    monkeypatch.setattr(evaluate, "log_weight_parts", parts)
    x = _indexed_images(1100)  # three blocks
    bounds = evaluate_bounds(
        small_vae(), x, 3, max_elements=max_elements, per_image=True
    )
    per_image = -x.double().sum(-1)
    torch.testing.assert_close(bounds["iwae_per_image"], per_image.float())
    expected = float(per_image.std() / per_image.numel() ** 0.5)
    assert bounds["iwae_se"] == pytest.approx(expected, rel=1e-4)
    assert bounds["iwae"] == pytest.approx(float(per_image.mean()), rel=1e-5)
    one = evaluate_bounds(small_vae(), x[:1], 3)
    assert one["iwae_se"] != one["iwae_se"]  # NaN: no spread from one image


def test_per_image_bounds_are_for_one_process():
    with pytest.raises(UsageError, match="per_image bounds are for one process"):
        evaluate_bounds(small_vae(), torch.zeros(2, P), per_image=True, shard=True)
