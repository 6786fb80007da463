"""Tests of the VAE's encoder and decoder networks (plain PyTorch modules)."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from ppl_models.models.vae.networks import (
    ACTIVATIONS,
    ARCHITECTURES,
    ConvDecoder,
    ConvEncoder,
    MLPDecoder,
    MLPEncoder,
    build_networks,
)

LATENT_DIM = 4


@functools.cache
def _networks(architecture: str, image_shape: tuple[int, int]) -> tuple:
    """Small networks, built once per (architecture, image_shape)."""
    torch.manual_seed(0)
    return build_networks(
        architecture, image_shape, LATENT_DIM, hidden_dims=(32, 16), base_depth=4
    )


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("lead", [(), (3,)], ids=["nolead", "lead3"])
@pytest.mark.parametrize("image_shape", [(28, 28), (8, 8)], ids=["28x28", "8x8"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_shapes_positive_scale_finite(architecture, image_shape, lead, batch):
    encoder, decoder = _networks(architecture, image_shape)
    num_pixels = image_shape[0] * image_shape[1]
    x = torch.rand(*lead, batch, num_pixels)
    with torch.no_grad():
        loc, scale = encoder(x)
        logits = decoder(loc)
        z = torch.randn(2, *lead, batch, LATENT_DIM)  # one more leading dim
        more_logits = decoder(z)
    assert loc.shape == scale.shape == (*lead, batch, LATENT_DIM)
    assert logits.shape == (*lead, batch, num_pixels)
    assert more_logits.shape == (2, *lead, batch, num_pixels)
    assert (scale > 0).all()
    for t in (loc, scale, logits, more_logits):
        assert torch.isfinite(t).all()


def test_leading_dims_do_not_mix_batch_elements():
    encoder, decoder = _networks("conv", (8, 8))
    x = torch.rand(3, 5, 64)
    with torch.no_grad():
        loc, scale = encoder(x)
        loc1, scale1 = encoder(x[1])
        logits, logits1 = decoder(loc), decoder(loc[1])
    torch.testing.assert_close(loc[1], loc1)
    torch.testing.assert_close(scale[1], scale1)
    torch.testing.assert_close(logits[1], logits1)


def test_scale_floor_keeps_scale_positive():
    encoder = MLPEncoder(4, 2, hidden_dims=())
    with torch.no_grad():
        encoder.net[0].weight.zero_()
        encoder.net[0].bias.fill_(-1e4)
        _, scale = encoder(torch.rand(3, 4))
    assert (scale > 0).all()


def test_mlp_defaults_match_pyro_reference_vae():
    encoder, decoder = build_networks("mlp", (28, 28), 50)
    assert _num_params(encoder) == 784 * 400 + 400 + 400 * 100 + 100
    assert _num_params(decoder) == 50 * 400 + 400 + 400 * 784 + 784
    assert [type(m) for m in encoder.net] == [nn.Linear, nn.Softplus, nn.Linear]
    assert [type(m) for m in decoder.net] == [nn.Linear, nn.Softplus, nn.Linear]


def test_mlp_depth_and_reversed_hidden_dims():
    encoder = MLPEncoder(64, 3, hidden_dims=(32, 16), activation="tanh")
    decoder = MLPDecoder(3, 64, hidden_dims=(32, 16), activation="tanh")
    enc = [(m.in_features, m.out_features) for m in encoder.net[::2]]
    dec = [(m.in_features, m.out_features) for m in decoder.net[::2]]
    assert enc == [(64, 32), (32, 16), (16, 6)]
    assert dec == [(3, 16), (16, 32), (32, 64)]
    assert all(isinstance(m, nn.Tanh) for m in encoder.net[1::2])
    linear = MLPEncoder(64, 3, hidden_dims=())
    assert len(linear.net) == 1 and _num_params(linear) == 64 * 6 + 6


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds_and_runs(activation):
    encoder, decoder = build_networks("mlp", (8, 8), 2, (8,), activation=activation)
    loc, _ = encoder(torch.rand(2, 64))
    assert decoder(loc).shape == (2, 64)


@pytest.mark.parametrize("image_shape", [(28, 28), (8, 8)], ids=["28x28", "8x8"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_gradients_reach_every_parameter(architecture, image_shape):
    torch.manual_seed(1)
    encoder, decoder = build_networks(
        architecture, image_shape, LATENT_DIM, hidden_dims=(16,), base_depth=4
    )
    x = torch.rand(2, 5, image_shape[0] * image_shape[1])
    loc, scale = encoder(x)
    z = loc + scale * torch.randn_like(loc)
    loss = nn.functional.binary_cross_entropy_with_logits(decoder(z), x)
    loss.backward()
    for name, p in [*encoder.named_parameters(), *decoder.named_parameters()]:
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"architecture": "resnet"}, "architecture.*mlp, conv"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"latent_dim": 2.5}, "latent_dim"),
        ({"hidden_dims": (400, 0)}, "hidden_dims"),
        ({"hidden_dims": (-1,)}, "hidden_dims"),
        ({"activation": "swish"}, "activation.*softplus.*relu"),
        ({"base_depth": 0}, "base_depth"),
        ({"image_shape": (28,)}, "image_shape"),
        ({"image_shape": (0, 28)}, "image_shape"),
        ({"architecture": "conv", "image_shape": (30, 30)}, r"image_shape.*\(30, 30\)"),
        ({"architecture": "conv", "image_shape": (28, 30)}, "divisible by 4"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    args = {"architecture": "mlp", "image_shape": (28, 28), "latent_dim": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_networks(**args)


def test_bad_constructor_arguments_raise_value_error():
    with pytest.raises(ValueError, match="num_pixels"):
        MLPEncoder(0, 2)
    with pytest.raises(ValueError, match="latent_dim"):
        MLPDecoder(-1, 64)
    with pytest.raises(ValueError, match="activation"):
        MLPEncoder(64, 2, hidden_dims=(), activation="nope")
    with pytest.raises(ValueError, match="image_shape"):
        ConvEncoder((30, 30), 2)
    with pytest.raises(ValueError, match="image_shape"):
        ConvDecoder(2, (30, 30))
    with pytest.raises(ValueError, match="base_depth"):
        ConvDecoder(2, (8, 8), base_depth=0)


def test_wrong_input_size_raises():
    encoder, decoder = _networks("mlp", (8, 8))
    with pytest.raises(ValueError, match="last dim 64"):
        encoder(torch.rand(2, 63))
    with pytest.raises(ValueError, match=f"last dim {LATENT_DIM}"):
        decoder(torch.rand(2, LATENT_DIM + 1))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_forward_creates_no_tensor_on_the_default_device(architecture):
    # Networks and inputs are made on the CPU before the default device changes;
    # a tensor made in forward without ``device=`` would land on meta and fail.
    encoder, decoder = _networks(architecture, (8, 8))
    x = torch.rand(3, 2, 64)
    eps = torch.randn(3, 2, LATENT_DIM)
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        loc, scale = encoder(x)
        logits = decoder(loc + scale * eps)
    finally:
        torch.set_default_device(None)  # not "cpu": that would leave a mode set
    assert torch.empty(0).device == previous
    for t in (loc, scale, logits):
        assert t.device.type == "cpu"
        assert torch.isfinite(t).all()


@pytest.mark.parametrize(
    ("image_shape", "small"), [((28, 28), (7, 7)), ((8, 8), (2, 2))]
)
def test_conv_defaults_follow_the_tfp_layout(image_shape, small):
    encoder, decoder = build_networks("conv", image_shape, 16)
    enc_convs = [m for m in encoder.net if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in enc_convs] == [32, 32, 64, 64, 64]
    assert [m.stride[0] for m in enc_convs] == [1, 2, 1, 2, 1]
    assert enc_convs[-1].kernel_size == small
    assert decoder.net[0].kernel_size == small
    assert isinstance(decoder.net[-1], nn.Conv2d) and decoder.net[-1].out_channels == 1
    with torch.no_grad():
        loc, _ = encoder(torch.rand(2, image_shape[0] * image_shape[1]))
        assert decoder(loc).shape == (2, image_shape[0] * image_shape[1])
