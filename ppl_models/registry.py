"""A registry of the zoo's models, filled by a class decorator.

Each model package under :mod:`ppl_models.models` defines a :class:`ModelSpec`
subclass and decorates it with :func:`register_model`. The command line, the demo
and the tests find models only through this registry, so adding a model means adding
its package: nothing else in the zoo names it.

A model's settings are a dataclass of :func:`ppl_models.settings.setting` fields
(``config_class``): the command line makes ``fit``'s options from it, and a run's
``config.json`` holds it. ``evaluate``'s options, where a model has them, are a
dataclass too (``evaluate_class``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from pyro.infer import ELBO

from ppl_models.errors import UsageError
from ppl_models.inference.compiled import COMPILE_MODES
from ppl_models.settings import setting


@dataclass
class SmokeCase:
    """A small instance of a model with one guide and one ELBO, for shared tests.

    ``model(*fit_args)`` and ``guide(*fit_args)`` condition on data;
    ``model(*predict_args)`` generates it, with latents from
    ``guide(*guide_predict_args)`` (default: ``predict_args``; an amortized guide
    needs the data). ``elbo`` builds a fresh ELBO. ``inference`` names the entry
    of the model's ``inference_methods`` that the case exercises.
    """

    name: str
    inference: str
    model: Callable[..., Any]
    guide: Callable[..., Any]
    elbo: Callable[[], ELBO]
    fit_args: tuple = ()
    predict_args: tuple = ()
    guide_predict_args: tuple | None = None
    observed_site: str = "x"
    latent_sites: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RunOptions:
    """How a fit runs, besides its config (neither is in ``config.json``)."""

    #: continue the run in the directory from its checkpoint
    resume: bool = setting(False, "continue the run in --out")
    #: trace and compile the ELBO with this torch.compile mode (None: plain Pyro)
    compile: str | None = setting(
        None,
        "trace the ELBO into a graph and compile it with this torch.compile "
        "mode: faster steps after a compile of some seconds (default: plain Pyro)",
        choices=COMPILE_MODES,
    )


class ModelSpec(ABC):
    """What the zoo needs to know about one model to fit, evaluate and criticise it."""

    #: the name used on the command line and in ``summary.json``
    name: ClassVar[str]
    #: one line for ``ppl-models list``
    description: ClassVar[str]
    #: inference method name -> one-line description
    inference_methods: ClassVar[Mapping[str, str]]
    #: the dataclass of a fit's settings: ``fit NAME`` has an option for each,
    #: ``config.json`` holds them (see :mod:`ppl_models.settings`)
    config_class: ClassVar[type]
    #: the dataclass of ``evaluate``'s options, for a model with that step
    evaluate_class: ClassVar[type | None] = None
    #: whether ``fit --resume`` can continue a run from its checkpoint
    can_resume: ClassVar[bool] = False
    #: whether ``torchrun`` can train it data-parallel (minibatch models)
    data_parallel: ClassVar[bool] = False
    #: the summary entries a user reads first, printed after ``fit`` and
    #: ``evaluate`` (and in the demo's overview) where present
    headline_keys: ClassVar[tuple[str, ...]] = ("fit_seconds",)
    #: the summary entries printed after ``criticize``
    criticism_keys: ClassVar[tuple[str, ...]] = ()
    #: the summary entries printed after ``evaluate`` (the numbers it computes)
    evaluation_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def fit_run(
        cls,
        config: Any,
        run_dir: Path,
        device: torch.device,
        options: RunOptions,
    ) -> dict[str, Any]:
        """Fit the model as ``config`` (a ``config_class``) says, fill ``run_dir``,
        return the summary.

        With ``options.resume``, go on from the checkpoint in ``run_dir``; ``config``
        is then the run's own (see :func:`ppl_models.run_config.resumed`).
        """

    @classmethod
    @abstractmethod
    def criticize_run(cls, run_dir: Path, device: torch.device) -> dict[str, Any]:
        """Criticise the fit saved in ``run_dir``; return the updated summary."""

    @classmethod
    @abstractmethod
    def load_fit(cls, run_dir: Path, device: torch.device) -> Any:
        """Rebuild the fit saved in ``run_dir`` on ``device`` (see
        :func:`ppl_models.load_fit`).
        """

    @classmethod
    @abstractmethod
    def smoke_fit_args(cls) -> list[str]:
        """``fit`` arguments for a run of seconds on a CPU that needs no download:
        the shared tests fit, criticise, evaluate and reload every model with them.
        """

    @classmethod
    def evaluate_run(
        cls, run_dir: Path, options: Any, device: torch.device
    ) -> dict[str, Any]:
        """Evaluate the fit saved in ``run_dir`` as ``options`` (an
        ``evaluate_class``) say; return the updated summary.
        """
        raise UsageError(f"model {cls.name!r} has no 'evaluate' step; try 'criticize'")

    @classmethod
    def figure_notes(cls, config: Any) -> dict[str, str]:
        """What each figure of a run shows, in one line: file name -> note
        (``ppl-models demo`` prints those of the files a run wrote; default none).
        """
        return {}

    @classmethod
    def demo_runs(cls) -> dict[str, list[str]]:
        """Runs for ``ppl-models demo``: run name -> ``fit`` arguments. Each must need
        no download and finish in seconds on a CPU.
        """
        return {}

    @classmethod
    @abstractmethod
    def smoke_cases(cls, device: torch.device) -> Iterator[SmokeCase]:
        """Small instances on ``device``: at least one for every inference method in
        ``inference_methods``, and one per ELBO and variant worth exercising.
        """


_REGISTRY: dict[str, type[ModelSpec]] = {}


def register_model(spec: type[ModelSpec]) -> type[ModelSpec]:
    """Class decorator: file ``spec`` under ``spec.name``.

    :raises TypeError: if ``spec`` leaves out a method every model must define, or
        its ``config_class``.
    """
    # Specs are used as classes, never instantiated, so ABC alone would not notice.
    missing = sorted(getattr(spec, "__abstractmethods__", ()))
    if not hasattr(spec, "config_class"):
        missing.insert(0, "config_class")
    if missing:
        raise TypeError(f"model {spec.name!r} does not define {', '.join(missing)}")
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise RuntimeError(f"two models registered under the name {spec.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_bundled_models()
    return sorted(_REGISTRY)


def get_model(name: str) -> type[ModelSpec]:
    """The spec registered as ``name``.

    :raises UsageError: if there is no such model.
    """
    _load_bundled_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UsageError(f"unknown model {name!r}: expected one of {known}") from None


def _load_bundled_models() -> None:
    # Importing the package imports every model subpackage, which registers it.
    import ppl_models.models  # noqa: F401
