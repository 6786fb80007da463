"""A categorical VAE (Gumbel-softmax), built on the VAE's stack."""

from ppl_models.models.catvae.experiment import CatVAEFit, CatVAESpec
from ppl_models.models.catvae.model import CatVAE, CatVAEConfig

__all__ = ["CatVAE", "CatVAEConfig", "CatVAEFit", "CatVAESpec"]
