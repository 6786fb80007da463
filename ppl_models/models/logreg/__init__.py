"""Bayesian logistic and softmax regression: MAP, mean-field and full-rank VI, NUTS
as the gold standard, and its command line."""

from ppl_models.models.logreg.model import LogReg, make_elbo, make_guide
from ppl_models.models.logreg.spec import LogRegConfig, LogRegSpec

__all__ = ["LogReg", "LogRegConfig", "LogRegSpec", "make_elbo", "make_guide"]
