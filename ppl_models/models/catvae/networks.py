"""The categorical VAE's networks: an MLP encoder giving each latent's class logits,
and the VAE's MLP decoder reading the flattened one-hot code."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ppl_models.models.vae.networks import MLPDecoder, mlp


class CategoricalEncoder(nn.Module):
    """x ``(..., batch, num_pixels)`` -> logits ``(..., batch, latents, classes)``,
    through ``num_pixels -> hidden_dims... -> latents * classes``."""

    def __init__(
        self,
        num_pixels: int,
        latents: int,
        classes: int,
        hidden_dims: Sequence[int] = (400,),
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        self.num_pixels, self.code_shape = num_pixels, (latents, classes)
        self.net = mlp((num_pixels, *hidden_dims, latents * classes), activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-probabilities of each latent's classes."""
        logits = self.net(x.reshape(-1, self.num_pixels))
        return logits.reshape(*x.shape[:-1], *self.code_shape)


class CodeDecoder(MLPDecoder):
    """The VAE's MLP decoder of a code ``(..., batch, latents, classes)``,
    flattened, to pixel logits ``(..., batch, num_pixels)``."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z.flatten(-2))


def build_networks(
    num_pixels: int,
    latents: int,
    classes: int,
    hidden_dims: Sequence[int],
    activation: str,
) -> tuple[CategoricalEncoder, CodeDecoder]:
    """The encoder, and the decoder (the VAE's, mirrored widths)."""
    encoder = CategoricalEncoder(num_pixels, latents, classes, hidden_dims, activation)
    decoder = CodeDecoder(latents * classes, num_pixels, hidden_dims, activation)
    return encoder, decoder
