"""Model criticism by composing Pyro's effect handlers."""

from ppl_models.criticism.ppc import (
    CheckResult,
    exceedance,
    posterior_predictive_check,
    replicate,
)
from ppl_models.criticism.replay import replay_guide, replay_latents

__all__ = [
    "CheckResult",
    "exceedance",
    "posterior_predictive_check",
    "replay_guide",
    "replay_latents",
    "replicate",
]
