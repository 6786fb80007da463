"""A categorical VAE run's settings (``fit catvae``'s options, ``config.json``) and
the networks' config that its checkpoint keeps; each setting is declared once."""

from __future__ import annotations

from dataclasses import dataclass

from ppl_models.errors import UsageError
from ppl_models.inference.elbo import ELBOS
from ppl_models.models.vae.config import VAERunConfig
from ppl_models.models.vae.network_config import NetworkConfig
from ppl_models.settings import setting


@dataclass
class CatVAERunConfig(VAERunConfig):
    """The VAE's data and training settings, with its network settings narrowed to
    the categorical VAE's and the relaxation's added."""

    #: the VAE's network settings that a code of one-hot latents has no use for
    dropped_settings = ("base_depth", "mixture_components", "guide", "flows")

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
        "meanfield",
        "meanfield: TraceMeanField_ELBO, the code's KL that of its categoricals "
        "(Jang et al.); trace: Trace_ELBO, a Monte Carlo KL of the relaxed densities; "
        "iwae: the relaxed model's importance-weighted bound",
        choices=ELBOS,
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


@dataclass(frozen=True)
class CatVAEConfig(NetworkConfig, settings=CatVAERunConfig):
    """Everything that fixes a categorical VAE: the image shape and the settings
    above of the same names, with their defaults and checks."""

    latent_dim: int
    num_classes: int
    architecture: str
    hidden_dims: tuple[int, ...]
    activation: str
    prior: str
    likelihood: str
    straight_through: bool
    temperature: float
    min_temperature: float
    anneal_rate: float
    anneal_per: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_temperature > self.temperature:
            raise UsageError(
                f"min_temperature {self.min_temperature} is above the "
                f"starting temperature {self.temperature}"
            )

    #: numbers in one code z, N * K
    code_size = property(lambda self: self.latent_dim * self.num_classes)
