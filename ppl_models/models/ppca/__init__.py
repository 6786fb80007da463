"""Probabilistic PCA: the model, its MAP, collapsed and mean-field fits, the closed
form, NUTS as the gold standard, and its command line."""

from ppl_models.models.ppca.closed_form import (
    ClosedForm,
    closed_form,
    closed_form_w,
    subspace_cosine,
)
from ppl_models.models.ppca.config import PPCARunConfig
from ppl_models.models.ppca.criticize import ppca_statistics
from ppl_models.models.ppca.experiment import PPCASpec
from ppl_models.models.ppca.fit import PPCAFit, fit_ppca
from ppl_models.models.ppca.model import (
    INFERENCE_METHODS,
    PPCA,
    make_elbo,
    make_guide,
    simulate,
)

__all__ = [
    "INFERENCE_METHODS",
    "ClosedForm",
    "PPCA",
    "PPCAFit",
    "PPCARunConfig",
    "PPCASpec",
    "closed_form",
    "closed_form_w",
    "fit_ppca",
    "make_elbo",
    "make_guide",
    "ppca_statistics",
    "simulate",
    "subspace_cosine",
]
