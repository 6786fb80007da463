"""What the zoo's VAE training is measured against.

* :func:`handwritten_step`: the same networks, negative ELBO and Adam optimizer,
  written directly in PyTorch with no Pyro: the floor a PPL's step can approach.
* :func:`stock_pyro_epoch`: the training loop of Pyro's own VAE example
  (``examples/vae/vae.py``): ``pyro.module`` registrations, ``SVI`` with Pyro's
  Adam wrapper, a ``DataLoader`` of host tensors copied to the device per batch, and
  ``svi.step`` returning a Python float per step.

Both take the zoo's networks, so all three compute the same loss.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence
from torch.nn import functional as F

from ppl_models.models.vae import VAE


def handwritten_loss(vae: VAE, x: torch.Tensor, elbo: str) -> torch.Tensor:
    """The negative ELBO of images ``x`` (B, P) for a normal-prior Bernoulli VAE,
    summed over the batch: Monte Carlo KL (``"trace"``) or analytic KL
    (``"meanfield"``), one reparameterized draw of z (B, latent_dim) per image.
    """
    loc, scale = vae.guide.encoder(x)
    z = loc + scale * torch.randn_like(loc)
    log_lik = -F.binary_cross_entropy_with_logits(
        vae.model.decoder(z), x, reduction="sum"
    )
    q = dist.Normal(loc, scale)
    p = dist.Normal(torch.zeros_like(loc), torch.ones_like(scale))
    if elbo == "trace":
        kl = (q.log_prob(z) - p.log_prob(z)).sum()
    else:
        kl = kl_divergence(q, p).sum()
    return kl - log_lik


def handwritten_step(
    vae: VAE, elbo: str, lr: float = 1e-3
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A training step ``step(x) -> loss`` (0-dim, on the device) in plain PyTorch."""
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)

    def step(x: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = handwritten_loss(vae, x, elbo)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


class StockPyroVAE(torch.nn.Module):
    """Model and guide written as in Pyro's VAE example, around the zoo's nets."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.encoder = vae.guide.encoder
        self.decoder = vae.model.decoder
        self.latent_dim = vae.config.latent_dim

    def model(self, x: torch.Tensor) -> None:
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], self.latent_dim)))
            z_scale = x.new_ones(torch.Size((x.shape[0], self.latent_dim)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            logits = self.decoder(z)
            pyro.sample("obs", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


def stock_pyro_svi(vae: VAE, elbo: str, lr: float = 1e-3) -> SVI:
    """``SVI`` over the example's model and guide, with Pyro's Adam wrapper."""
    pyro.clear_param_store()
    stock = StockPyroVAE(vae)
    loss = Trace_ELBO() if elbo == "trace" else TraceMeanField_ELBO()
    return SVI(stock.model, stock.guide, pyro.optim.Adam({"lr": lr}), loss=loss)


def stock_loader(
    train: torch.Tensor, batch_size: int, device: torch.device
) -> torch.utils.data.DataLoader:
    """The example's loader: host tensors, shuffled, one worker and pinned memory
    on a GPU (as the example sets them), none on the CPU.
    """
    on_gpu = device.type == "cuda"
    dataset = torch.utils.data.TensorDataset(train.cpu())
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=1 if on_gpu else 0,
        pin_memory=on_gpu,
    )


def stock_pyro_epoch(
    svi: SVI, loader: torch.utils.data.DataLoader, device: torch.device
) -> float:
    """One epoch of the example's loop; returns the summed loss, a Python float."""
    epoch_loss = 0.0
    for (x,) in loader:
        epoch_loss += svi.step(x.to(device))
    return epoch_loss
