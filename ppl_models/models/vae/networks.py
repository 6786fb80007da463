"""Encoder and decoder networks of the variational autoencoder (plain PyTorch).

Images are flattened to ``(..., batch, num_pixels)`` float tensors in ``[0, 1]``;
latent codes are ``(..., batch, latent_dim)``. Any leading dims (vectorized ELBO
particles, importance samples) are flattened on the way in and restored on the way
out. Encoders return ``(loc, scale)`` of a diagonal Normal, scale strictly positive
(``with_features`` adds their last hidden layer, ``(..., batch, feature_dim)``, the
context of a flow guide); decoders return unconstrained pixel logits.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ppl_models.errors import UsageError

ARCHITECTURES = ("mlp", "conv")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "softplus": nn.Softplus,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}
#: Floor added to the softplus of the encoder's raw scale so it never underflows.
MIN_SCALE = 1e-5
#: Leaky ReLU slope of the conv networks (that of ``tf.nn.leaky_relu``, as in TFP).
CONV_NEGATIVE_SLOPE = 0.2


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise UsageError(
            f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


def _check_ints(name: str, values: object, count: int | None = None) -> tuple[int, ...]:
    """``values`` as positive ints (``count`` of them, if given), else UsageError."""
    one = count == 1 or not isinstance(values, Iterable)
    vals = (values,) if one else tuple(values)  # type: ignore[arg-type]
    ok = all(
        not isinstance(v, bool) and hasattr(v, "__index__") and operator.index(v) >= 1
        for v in vals
    )
    if not ok or count not in (None, len(vals)):
        what = "a positive integer" if count == 1 else "positive integers"
        raise UsageError(f"{name} must be {what}, got {values!r}")
    return tuple(map(operator.index, vals))


def _check_positive(name: str, value: int) -> int:
    return _check_ints(name, value, count=1)[0]


def _check_image_shape(
    image_shape: tuple[int, int], conv: bool = False
) -> tuple[int, int]:
    """``(H, W)`` as ints; for the conv nets H and W must be divisible by 4."""
    h, w = _check_ints("image_shape (H, W)", image_shape, count=2)
    if conv and (h % 4 or w % 4):
        raise UsageError(
            "image_shape must have H and W divisible by 4 for the conv "
            f"architecture, got {tuple(image_shape)!r}"
        )
    return h, w


def mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers through ``sizes`` with ``activation`` between (not after)."""
    make_activation(activation)  # check the name even with no hidden layer
    layers: list[nn.Module] = [nn.Linear(sizes[0], sizes[1])]
    for d_in, d_out in itertools.pairwise(sizes[1:]):
        layers += [make_activation(activation), nn.Linear(d_in, d_out)]
    return nn.Sequential(*layers)


def _flatten(x: torch.Tensor, size: int, name: str) -> torch.Tensor:
    """``(..., batch, size)`` -> ``(N, size)``, checking the last dim."""
    if x.dim() < 1 or x.shape[-1] != size:
        raise ValueError(f"{name} must have last dim {size}, got {tuple(x.shape)}")
    return x.reshape(-1, size)


def _split_loc_scale(
    out: torch.Tensor, lead: torch.Size, latent_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    loc, raw = out.split(latent_dim, dim=-1)
    scale = F.softplus(raw) + MIN_SCALE
    return loc.reshape(*lead, latent_dim), scale.reshape(*lead, latent_dim)


def _with_features(
    net: nn.Sequential, inputs: torch.Tensor, lead: torch.Size, latent_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # The last layer gives (loc, raw scale); the layers before it, the features.
    features = net[:-1](inputs)
    loc, scale = _split_loc_scale(net[-1](features), lead, latent_dim)
    return loc, scale, features.reshape(*lead, features.shape[-1])


class MLPEncoder(nn.Module):
    """Fully connected encoder: x ``(..., batch, num_pixels)`` -> (loc, scale).

    ``num_pixels -> hidden_dims... -> 2 * latent_dim``; loc and scale are each
    ``(..., batch, latent_dim)``. Defaults with ``latent_dim=50`` give Pyro's
    reference 784-400-50 softplus VAE encoder.
    """

    def __init__(
        self,
        num_pixels: int,
        latent_dim: int,
        hidden_dims: Sequence[int] = (400,),
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        num_pixels = _check_positive("num_pixels", num_pixels)
        latent_dim = _check_positive("latent_dim", latent_dim)
        dims = _check_ints("hidden_dims", hidden_dims)
        self.num_pixels, self.latent_dim = num_pixels, latent_dim
        self.net = mlp((num_pixels, *dims, 2 * latent_dim), activation)
        #: width of the last hidden layer (the pixels, with no hidden layer)
        self.feature_dim = dims[-1] if dims else num_pixels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(..., batch, num_pixels)`` -> loc, scale ``(..., batch, latent_dim)``."""
        loc, scale, _ = self.with_features(x)
        return loc, scale

    def with_features(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> loc, scale and the last hidden layer ``(..., batch, feature_dim)``."""
        flat = _flatten(x, self.num_pixels, "x")
        return _with_features(self.net, flat, x.shape[:-1], self.latent_dim)


class MLPDecoder(nn.Module):
    """Fully connected decoder: z ``(..., batch, latent_dim)`` -> logits.

    ``latent_dim -> reversed(hidden_dims)... -> num_pixels``; returns logits
    ``(..., batch, num_pixels)``.
    """

    def __init__(
        self,
        latent_dim: int,
        num_pixels: int,
        hidden_dims: Sequence[int] = (400,),
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        latent_dim = _check_positive("latent_dim", latent_dim)
        num_pixels = _check_positive("num_pixels", num_pixels)
        dims = _check_ints("hidden_dims", hidden_dims)
        self.num_pixels, self.latent_dim = num_pixels, latent_dim
        self.net = mlp((latent_dim, *reversed(dims), num_pixels), activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z ``(..., batch, latent_dim)`` -> logits ``(..., batch, num_pixels)``."""
        flat = _flatten(z, self.latent_dim, "z")
        return self.net(flat).reshape(*z.shape[:-1], self.num_pixels)


def _act() -> nn.Module:
    return nn.LeakyReLU(CONV_NEGATIVE_SLOPE)


class ConvEncoder(nn.Module):
    """Convolutional encoder (TFP VAE example): x ``(..., batch, H*W)`` -> (loc, scale).

    Four 5x5 convs (strides 1, 2, 1, 2) downsample by 4, a 'valid' conv over the
    remaining ``(H/4, W/4)`` gives ``4 * latent_dim`` channels, then a linear layer
    gives ``2 * latent_dim``; loc and scale are each ``(..., batch, latent_dim)``.
    """

    def __init__(
        self, image_shape: tuple[int, int], latent_dim: int, base_depth: int = 32
    ) -> None:
        super().__init__()
        latent_dim = _check_positive("latent_dim", latent_dim)
        b = _check_positive("base_depth", base_depth)
        h, w = self.image_shape = _check_image_shape(image_shape, conv=True)
        self.num_pixels, self.latent_dim, small = h * w, latent_dim, (h // 4, w // 4)
        self.net = nn.Sequential(
            nn.Conv2d(1, b, 5, stride=1, padding=2), _act(),
            nn.Conv2d(b, b, 5, stride=2, padding=2), _act(),
            nn.Conv2d(b, 2 * b, 5, stride=1, padding=2), _act(),
            nn.Conv2d(2 * b, 2 * b, 5, stride=2, padding=2), _act(),
            nn.Conv2d(2 * b, 4 * latent_dim, small), _act(),
            nn.Flatten(),
            nn.Linear(4 * latent_dim, 2 * latent_dim),
        )  # fmt: skip
        self.feature_dim = 4 * latent_dim  # the flattened last conv

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(..., batch, H*W)`` -> loc, scale ``(..., batch, latent_dim)``."""
        loc, scale, _ = self.with_features(x)
        return loc, scale

    def with_features(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> loc, scale and the last hidden layer ``(..., batch, feature_dim)``."""
        images = _flatten(x, self.num_pixels, "x").reshape(-1, 1, *self.image_shape)
        return _with_features(self.net, images, x.shape[:-1], self.latent_dim)


class ConvDecoder(nn.Module):
    """Transposed-conv decoder (TFP VAE example): z ``(..., batch, latent_dim)``.

    z as a 1x1 image -> 'valid' transposed conv to ``(H/4, W/4)`` -> 5x5 transposed
    convs (strides 1, 2, 1, 2, 1) up to ``(H, W)`` -> a 5x5 conv to one channel;
    returns logits ``(..., batch, H*W)``.
    """

    def __init__(
        self, latent_dim: int, image_shape: tuple[int, int], base_depth: int = 32
    ) -> None:
        super().__init__()
        latent_dim = _check_positive("latent_dim", latent_dim)
        b = _check_positive("base_depth", base_depth)
        h, w = self.image_shape = _check_image_shape(image_shape, conv=True)
        self.num_pixels, self.latent_dim, small = h * w, latent_dim, (h // 4, w // 4)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 2 * b, small), _act(),
            nn.ConvTranspose2d(2 * b, 2 * b, 5, stride=1, padding=2), _act(),
            nn.ConvTranspose2d(2 * b, 2 * b, 5, 2, 2, output_padding=1), _act(),
            nn.ConvTranspose2d(2 * b, b, 5, stride=1, padding=2), _act(),
            nn.ConvTranspose2d(b, b, 5, 2, 2, output_padding=1), _act(),
            nn.ConvTranspose2d(b, b, 5, stride=1, padding=2), _act(),
            nn.Conv2d(b, 1, 5, padding=2),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z ``(..., batch, latent_dim)`` -> logits ``(..., batch, H*W)``."""
        flat = _flatten(z, self.latent_dim, "z")
        out = self.net(flat.reshape(-1, self.latent_dim, 1, 1))
        assert tuple(out.shape[-2:]) == self.image_shape, out.shape  # by design
        return out.reshape(*z.shape[:-1], self.num_pixels)


def build_networks(
    architecture: str,
    image_shape: tuple[int, int],
    latent_dim: int,
    hidden_dims: Sequence[int] = (400,),
    activation: str = "softplus",
    base_depth: int = 32,
) -> tuple[nn.Module, nn.Module]:
    """Build ``(encoder, decoder)`` for images of ``image_shape`` (H, W).

    ``architecture`` is one of ``ARCHITECTURES``; ``"mlp"`` uses ``hidden_dims``
    and ``activation``, ``"conv"`` uses ``base_depth`` (all are checked either
    way). The encoder maps
    ``(..., batch, H*W)`` to (loc, scale) ``(..., batch, latent_dim)``; the decoder
    maps ``(..., batch, latent_dim)`` to logits ``(..., batch, H*W)``.
    """
    if architecture not in ARCHITECTURES:
        raise UsageError(
            f"unknown architecture {architecture!r}: expected one of "
            f"{', '.join(ARCHITECTURES)}"
        )
    h, w = _check_image_shape(image_shape)
    latent_dim = _check_positive("latent_dim", latent_dim)
    dims = _check_ints("hidden_dims", hidden_dims)
    make_activation(activation)
    base_depth = _check_positive("base_depth", base_depth)
    if architecture == "mlp":
        return (
            MLPEncoder(h * w, latent_dim, dims, activation),
            MLPDecoder(latent_dim, h * w, dims, activation),
        )
    return (
        ConvEncoder((h, w), latent_dim, base_depth),
        ConvDecoder(latent_dim, (h, w), base_depth),
    )
