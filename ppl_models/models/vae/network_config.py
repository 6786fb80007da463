"""The base of a VAE-family model's network config: the data's image shape, and
fields that are settings of the run's config, whose defaults and checks they take."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ppl_models.settings import settings_of

N = TypeVar("N", bound="NetworkConfig")


@dataclass(frozen=True)
class NetworkConfig:
    """The config of a VAE-family model's networks, which its checkpoint keeps: the
    data's image shape, and fields that are settings of the run's config, whose
    defaults and checks they take, so that each is declared once. A subclass names
    that run config in its class statement, which becomes that run config's
    ``network_config_class``, and lists its fields with their types::

        @dataclass(frozen=True)
        class CatVAEConfig(NetworkConfig, settings=CatVAERunConfig):
            latent_dim: int
            num_classes: int

    A subclass that names no run config (the VAE's own ``VAEConfig``, whose run
    settings may be left to the run) declares and checks its fields itself.
    """

    image_shape: tuple[int, int] = (28, 28)
    #: the run config whose settings the fields are, if one is named
    settings_class: ClassVar[type | None] = None

    def __init_subclass__(cls, settings: type | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if settings is None:
            return
        cls.settings_class = settings
        settings.network_config_class = cls
        fields = cls.__dict__.get("__annotations__", {})
        for s in settings_of(settings):
            if s.name in fields and s.name not in cls.__dict__:
                setattr(cls, s.name, s.default)  # before @dataclass reads it

    def __post_init__(self) -> None:
        # Checked as the settings are, whether from a run, Python or a checkpoint.
        own = {field.name for field in dataclasses.fields(self)}
        if self.settings_class is not None:
            for s in settings_of(self.settings_class):
                if s.name in own:
                    object.__setattr__(self, s.name, s.check(getattr(self, s.name)))
        # a checkpoint's JSON has lists
        object.__setattr__(self, "image_shape", tuple(self.image_shape))

    @property
    def num_pixels(self) -> int:
        """P = H * W."""
        return math.prod(self.image_shape)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[N], values: Mapping[str, Any]) -> N:
        """Rebuild from :meth:`to_dict` output, ignoring unknown keys (an older
        checkpoint's)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
