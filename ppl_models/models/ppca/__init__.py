"""Probabilistic PCA: the model, MAP and mean-field fits, and its command line."""

from ppl_models.models.ppca.config import PPCARunConfig
from ppl_models.models.ppca.criticize import ppca_statistics
from ppl_models.models.ppca.experiment import PPCASpec
from ppl_models.models.ppca.fit import PPCAFit, fit_ppca
from ppl_models.models.ppca.model import (
    INFERENCE_METHODS,
    PPCA,
    closed_form_w,
    make_elbo,
    make_guide,
    simulate,
    subspace_cosine,
)

__all__ = [
    "INFERENCE_METHODS",
    "PPCA",
    "PPCAFit",
    "PPCARunConfig",
    "PPCASpec",
    "closed_form_w",
    "fit_ppca",
    "make_elbo",
    "make_guide",
    "ppca_statistics",
    "simulate",
    "subspace_cosine",
]
