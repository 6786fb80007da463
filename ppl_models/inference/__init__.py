"""Fitting guides to models by stochastic variational inference."""

from ppl_models.inference.svi import initialize_guide, make_objective, svi_step
from ppl_models.inference.trainer import run_svi, train_steps

__all__ = [
    "initialize_guide",
    "make_objective",
    "run_svi",
    "svi_step",
    "train_steps",
]
