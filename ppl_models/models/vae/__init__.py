"""Variational autoencoders: Pyro model and amortized guide, training, evaluation,
criticism and the command line."""

from ppl_models.models.vae.config import VAERunConfig
from ppl_models.models.vae.experiment import VAESpec
from ppl_models.models.vae.fit import VAEFit, fit_vae
from ppl_models.models.vae.history import History
from ppl_models.models.vae.model import VAE, VAEConfig, VAEGuide, VAEModel, make_elbo
from ppl_models.models.vae.train import Trained, TrainSettings, train_vae

__all__ = [
    "VAE",
    "History",
    "TrainSettings",
    "Trained",
    "VAEConfig",
    "VAEFit",
    "VAEGuide",
    "VAEModel",
    "VAERunConfig",
    "VAESpec",
    "fit_vae",
    "make_elbo",
    "train_vae",
]
