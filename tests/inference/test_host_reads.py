"""Training loops read the device only where a number was asked for: no host read
per step, so a GPU is never left waiting on Python.

Each loop runs twice, for different numbers of steps; a read per step would make
the two counts differ.
"""

from __future__ import annotations

import torch

from ppl_models.data.images import load_images
from ppl_models.inference import make_objective, run_svi
from ppl_models.models.ppca.fit import make_elbo as ppca_elbo
from ppl_models.models.ppca.model import PPCA, make_guide, simulate
from ppl_models.models.vae import VAE, VAEConfig
from ppl_models.models.vae.train import TrainSettings, train_vae
from tests.conftest import count_host_reads


def vae_epoch_reads(device, train_images: int) -> list[str]:
    data = load_images("digits", device=device, limit_train=train_images)
    data = data.to(device)
    torch.manual_seed(0)
    vae = VAE(VAEConfig(image_shape=(8, 8), latent_dim=3, hidden_dims=(16,)))
    vae.to(device)
    settings = TrainSettings(epochs=1, batch_size=32, check_every=10_000)
    with count_host_reads() as reads:
        train_vae(vae, data, settings, progress=False)
    return reads


def test_vae_training_reads_the_host_per_epoch_not_per_step(device):
    few = vae_epoch_reads(device, 64)  # 2 steps
    many = vae_epoch_reads(device, 640)  # 20 steps
    assert sorted(many) == sorted(few)
    # Pyro's validation (distribution argument checks) runs once per fit, before
    # the first step; the rest are the epoch's own reads.
    validation = [read for read in few if "torch.distributions" in read]
    assert validation and len(few) - len(validation) < 20


def ppca_reads(device, steps: int, check_every: int = 100) -> list[str]:
    torch.manual_seed(0)
    model = PPCA(3, 1, 0.5).to(device)
    x, _, _ = simulate(model, 200)
    reads = []
    for inference in ("map", "meanfield"):
        guide = make_guide(model, inference)
        objective = make_objective(model, guide, ppca_elbo(inference), x)
        optimizer = torch.optim.Adam(objective.parameters(), lr=0.01)
        with count_host_reads() as fit_reads:
            losses = run_svi(
                objective, optimizer, steps, x, progress=False, check_every=check_every
            )
        assert losses.shape == (steps,)
        reads += [f"{inference}: {read}" for read in fit_reads]
    return reads


def test_ppca_fits_read_only_the_nan_watch_every_check_every_steps(device):
    watch = "__int__ (ppl_models.inference.guard)"
    # After the last step: the watch, and whether every parameter is finite.
    end = [watch, "tolist (ppl_models.inference.guard)"]
    once = [f"{fit}: {read}" for fit in ("map", "meanfield") for read in end]
    assert ppca_reads(device, 3) == ppca_reads(device, 30) == once
    # Every check_every steps as well: steps 10 and 20, then the end at 30.
    checks = [f"{fit}: {read}" for fit in ("map", "meanfield")
              for read in [watch, watch, *end]]  # fmt: skip
    assert ppca_reads(device, 30, check_every=10) == checks
