"""The settings every full-batch SVI model shares; a model's config extends them."""

from __future__ import annotations

from dataclasses import dataclass

from ppl_models.settings import check_settings, seed_setting, setting


@dataclass
class FullBatchConfig:
    """How a full-batch SVI model is fitted and checked.

    A model's config is a dataclass that subclasses this one and adds its own
    settings (sizes, noise, ...). To offer its inference methods as choices on the
    command line it redeclares ``inference`` with ``choices=``; otherwise any name
    is taken and checked against the model's ``inference_methods`` when it fits.
    """

    inference: str = setting(
        "meanfield", "the guide and ELBO: one of the model's inference methods"
    )
    steps: int = setting(
        1000, "full-batch SVI steps in all, resumed ones too", resumable=True
    )
    checkpoint_every: int = setting(
        500,
        "steps between checkpoints (one is also written after the last step and on "
        "Ctrl-C)",
        resumable=True,
    )
    lr: float = setting(0.05, "Adam's learning rate")
    ppc_samples: int = setting(200, "replicated data sets for the predictive checks")
    seed: int = seed_setting()

    def __post_init__(self) -> None:
        # Every setting within its declared range, however the config was made.
        check_settings(self)
