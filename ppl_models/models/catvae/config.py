"""A categorical VAE run's settings (``fit catvae``'s options, ``config.json``) and
the networks' config that its checkpoint keeps; each setting is declared once."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ppl_models.errors import UsageError
from ppl_models.inference.elbo import ELBOS
from ppl_models.models.vae.config import VAERunConfig
from ppl_models.models.vae.model import VAEConfig
from ppl_models.settings import common_values, setting, settings_of


@dataclass
class CatVAERunConfig(VAERunConfig):
    """The VAE's data and training settings, with its network settings narrowed to
    the categorical VAE's and the relaxation's added."""

    binarize: str = setting(
        "dynamic",
        "dynamic: resample pixels every epoch; threshold: at 0.5",
        choices=("dynamic", "threshold"),
    )
    architecture: str = setting("mlp", "networks", choices=("mlp",))
    latent_dim: int = setting(20, "N, categorical latents")
    prior: str = setting(
        "uniform", "p(z): uniform over K classes", choices=("uniform",)
    )
    likelihood: str = setting("bernoulli", "p(x | z)", choices=("bernoulli",))
    elbo: str = setting(
        "trace",
        "trace: Trace_ELBO; iwae: the importance-weighted "
        "bound (both of the relaxed densities)",
        choices=tuple(e for e in ELBOS if e != "meanfield"),
    )
    num_classes: int = setting(10, "K, classes of each latent", low=2)
    straight_through: bool = setting(
        False, "decode the hard one-hot code; gradients through the relaxed one"
    )
    temperature: float = setting(1.0, "tau0, the relaxation's starting temperature")
    min_temperature: float = setting(0.5, "the temperature's floor")
    anneal_rate: float = setting(
        1e-4, "r in tau = max(floor, tau0 exp(-r t)), t in --anneal-per", low=0.0
    )
    anneal_per: str = setting("step", "t counts", choices=("step", "epoch"))

    def __post_init__(self) -> None:
        super().__post_init__()
        # The VAE's network settings that this model has no use for keep their
        # defaults: one given would be ignored.
        for s in settings_of(VAERunConfig):
            unused = s.name in VAE_ONLY and getattr(self, s.name) != s.default
            if unused:
                raise UsageError(f"{s.flag} is not a setting of the categorical VAE")
        CatVAEConfig(**self.network_settings())

    def network_settings(self) -> dict:
        return common_values(self, CatVAEConfig)


@dataclass(frozen=True)
class CatVAEConfig:
    """Everything that fixes a categorical VAE; checked against the settings above."""

    image_shape: tuple[int, int] = (28, 28)
    latent_dim: int = 20
    num_classes: int = 10
    architecture: str = "mlp"
    hidden_dims: tuple[int, ...] = (400,)
    activation: str = "softplus"
    prior: str = "uniform"
    likelihood: str = "bernoulli"
    straight_through: bool = False
    temperature: float = 1.0
    min_temperature: float = 0.5
    anneal_rate: float = 1e-4
    anneal_per: str = "step"

    def __post_init__(self) -> None:
        for s in settings_of(CatVAERunConfig):
            if s.name in FIELDS:
                object.__setattr__(self, s.name, s.check(getattr(self, s.name)))
        if self.min_temperature > self.temperature:
            raise UsageError(
                f"min_temperature {self.min_temperature} is above the "
                f"starting temperature {self.temperature}"
            )
        object.__setattr__(self, "image_shape", tuple(self.image_shape))

    num_pixels = property(lambda self: math.prod(self.image_shape))
    #: numbers in one code z, N * K
    code_size = property(lambda self: self.latent_dim * self.num_classes)
    to_dict = dataclasses.asdict
    from_dict = classmethod(VAEConfig.from_dict.__func__)


FIELDS = {f.name for f in dataclasses.fields(CatVAEConfig)}
VAE_ONLY = {f.name for f in dataclasses.fields(VAEConfig)} - FIELDS
