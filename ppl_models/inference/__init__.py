"""Fitting guides to models by stochastic variational inference."""

from ppl_models.inference.svi import initialize_guide, make_objective, run_svi, svi_step

__all__ = ["initialize_guide", "make_objective", "run_svi", "svi_step"]
