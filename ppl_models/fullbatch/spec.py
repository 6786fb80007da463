"""A model spec that does everything but the model: full-batch SVI from a few hooks.

A model subclasses :class:`FullBatchSpec`, names its config (a subclass of
:class:`~ppl_models.fullbatch.FullBatchConfig`) and gives ``build`` (the model and
the guide) and ``data`` (their arguments); ``@register_model`` then puts it on the
command line with checkpoints, exact resume, the NaN watch, Ctrl-C, a run directory,
posterior predictive checks and :func:`ppl_models.load_fit`, and the registry's
shared tests run it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pyro
import torch
from pyro import poutine
from pyro.infer import ELBO

from ppl_models.criticism import posterior_predictive_check, replicate
from ppl_models.criticism.inference_data import (
    PointwiseLogLikelihood,
    conditional_log_likelihood,
    latent_sites,
)
from ppl_models.criticism.ppc import Statistic
from ppl_models.device import resolve_device
from ppl_models.fullbatch.config import FullBatchConfig
from ppl_models.fullbatch.fit import ENTRIES, FullBatchFit, WithExtras
from ppl_models.fullbatch.train import check_config, split_data, steps_done, train
from ppl_models.inference.elbo import DeviceTrace_ELBO
from ppl_models.io.checkpoint import check_entries, load_checkpoint
from ppl_models.io.run_dir import CHECKPOINT, update_summary
from ppl_models.plots import plot_ppc, save_figure
from ppl_models.registry import ModelSpec, RunOptions, SmokeCase
from ppl_models.run_config import (
    check_config_unedited,
    read_run_config,
    write_run_config,
)
from ppl_models.seeding import caller_rng_kept
from ppl_models.settings import command_line

Data = tuple[torch.Tensor | None, ...]


class FullBatchSpec(ModelSpec):
    """A model fitted by full-batch SVI with Adam: a :class:`ModelSpec` built from
    hooks. A subclass sets ``name``, ``description``, ``inference_methods`` and
    ``config_class``, and defines :meth:`build` and :meth:`data`; the other hooks
    have defaults.
    """

    config_class: ClassVar[type[FullBatchConfig]]
    #: the fit that ``fit``, ``fit_run`` and ``load_fit`` give: FullBatchFit, or a
    #: subclass with the model's own properties and methods
    fit_class: ClassVar[type[FullBatchFit]] = FullBatchFit
    can_resume = True
    headline_keys = ("final_loss", "fit_seconds")
    criticism_keys = ("ppc",)
    #: the model's name in figure titles (default: ``name``)
    label: ClassVar[str | None] = None
    #: the model's sample site of the observations
    observed_site: ClassVar[str] = "y"
    #: where the observations are among :meth:`data`'s tensors; the model
    #: generates them when it gets None there (Pyro's ``model(x, y=None)``)
    observed_arg: ClassVar[int] = -1
    #: the plate over data points, for a log likelihood per point (ArviZ's LOO)
    data_plate: ClassVar[str] = "data"
    #: settings for a run of seconds on a CPU: the shared tests' fits and smoke
    #: cases (see :meth:`smoke_fit_args`)
    smoke_settings: ClassVar[Mapping[str, Any]] = {"steps": 50, "ppc_samples": 20}

    # -- the hooks ---------------------------------------------------------------

    @classmethod
    @abstractmethod
    def build(
        cls, config: FullBatchConfig, device: torch.device
    ) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The model and the guide for ``config.inference``, on ``device``.

        Both are called with :meth:`data`'s tensors. Make them ``PyroModule``\\ s
        with the :class:`~ppl_models.inference.params.LocalParams` mixin, so their
        parameters stay in the modules and Pyro's param store is never touched.
        """

    @classmethod
    @abstractmethod
    def data(cls, config: FullBatchConfig, device: torch.device) -> Data | WithExtras:
        """The arguments the model and guide are fitted on, observations included,
        on ``device``. Called with the generators seeded from ``config.seed``, so
        simulated data are the same every run; a checkpoint keeps them. Return a
        :class:`~ppl_models.fullbatch.WithExtras` to keep by-products too.
        """

    @classmethod
    def start_from(
        cls, model: torch.nn.Module, guide: torch.nn.Module, data: Data
    ) -> None:
        """Set starting values from the data, say a mean (default: none). Called
        once, on a new fit, before its first step; a resumed fit loads its state.
        """

    @classmethod
    def resolve_config(cls, config: FullBatchConfig) -> FullBatchConfig:
        """The config a new fit runs with and ``config.json`` records (default:
        ``config``), say with sizes taken from a data file it names. Not called on
        a resume, whose config is the recorded one.
        """
        return config

    @classmethod
    def upgrade_checkpoint(cls, record: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint record in the format of :mod:`ppl_models.fullbatch.fit`
        (default: ``record``): for a model whose older runs saved another.
        """
        return record

    @classmethod
    def elbo(cls, config: FullBatchConfig) -> ELBO:
        """The ELBO for ``config.inference`` (default: the device-side
        ``Trace_ELBO``, right for any guide).
        """
        return DeviceTrace_ELBO()

    @classmethod
    def summary_numbers(cls, fit: FullBatchFit) -> dict[str, Any]:
        """The model's own numbers for ``summary.json`` (default: none)."""
        return {}

    @classmethod
    def predict_args(cls, config: FullBatchConfig, data: Data) -> Data:
        """The model's arguments to generate replicated data: ``data`` with None
        in place of the observations (``observed_arg``).
        """
        args = list(data)
        args[cls.observed_arg] = None
        return tuple(args)

    @classmethod
    def statistics(cls, config: FullBatchConfig) -> dict[str, Statistic]:
        """Test statistics of the observations for the predictive checks (default:
        their mean, standard deviation, minimum and maximum).
        """
        site = cls.observed_site
        return {
            f"mean of {site}": torch.mean,
            f"standard deviation of {site}": torch.std,
            f"minimum of {site}": torch.min,
            f"maximum of {site}": torch.max,
        }

    @classmethod
    def dims(cls, config: FullBatchConfig) -> dict[str, list[str]]:
        """Each sample site's dimension names, for ArviZ (default: numbered)."""
        return {}

    @classmethod
    def figure_notes(cls, config: FullBatchConfig) -> dict[str, str]:
        return {
            "loss.png": "the loss at each step: it should fall, then level off",
            "ppc.png": "each test statistic of the data (red) among the same "
            "statistic of replicated data sets; p near 0 or 1 flags a misfit",
        }

    @classmethod
    def log_likelihood(cls, fit: FullBatchFit) -> PointwiseLogLikelihood | None:
        """One draw's latents -> the log likelihood of each data point, for ArviZ's
        LOO (default: the observed site's log density given the latents, summed
        over all but ``data_plate``, right where the latents are global). A model
        with a latent per data point integrates it out, or returns None.
        """
        return conditional_log_likelihood(
            fit.model, fit.data, cls.observed_site, cls.data_plate
        )

    @classmethod
    def criticize(cls, fit: FullBatchFit, out_dir: Path) -> dict[str, Any]:
        """Criticise ``fit``: write plots into ``out_dir``, return summary entries
        (default: posterior predictive checks of :meth:`statistics`, ``ppc.png``).
        Its draws are seeded already (see :meth:`FullBatchFit.criticize`).
        """
        replicated = replicate(
            fit.model,
            fit.guide,
            cls.predict_args(fit.config, fit.data),
            num_samples=fit.config.ppc_samples,
            site=cls.observed_site,
        )
        observed = fit.data[cls.observed_arg]
        checks = posterior_predictive_check(
            observed, replicated, cls.statistics(fit.config)
        )
        label = cls.label or cls.name
        title = f"{label}, {fit.config.inference}: posterior predictive checks"
        save_figure(plot_ppc(checks, title=title), out_dir / "ppc.png")
        return {"ppc": {name: check.as_dict() for name, check in checks.items()}}

    # -- what every model gets -------------------------------------------------

    @classmethod
    def fit(
        cls,
        config: FullBatchConfig | None = None,
        device: torch.device | str = "auto",
        **options: Any,
    ) -> FullBatchFit:
        """Fit from Python (default config: ``config_class()``); ``options`` are
        :func:`~ppl_models.fullbatch.train.train`'s (``compile``, ``progress``,
        ``checkpoint_path``, ``resume_from``).
        """
        config = cls.config_class() if config is None else config
        if options.get("resume_from") is None:
            config = cls.resolve_config(config)
        else:
            options["resume_from"] = cls.upgrade_checkpoint(options["resume_from"])
        return train(cls, config, resolve_device(device), **options)

    @classmethod
    def fit_run(
        cls,
        config: FullBatchConfig,
        run_dir: Path,
        device: torch.device,
        options: RunOptions,
    ) -> dict[str, Any]:
        record = None
        check_config(cls, config)
        if options.resume:
            record = cls.read_checkpoint(run_dir, device)
            steps_done(record, config.steps)  # refused before any file is written
        else:
            config = cls.resolve_config(config)
        # Written first, so a checkpoint on disk always has its config beside it.
        write_run_config(run_dir, cls.name, config)
        fit = train(
            cls,
            config,
            device,
            compile=options.compile,
            checkpoint_path=run_dir / CHECKPOINT,
            resume_from=record,
        )
        fit.write_results(run_dir)
        return update_summary(run_dir, **fit.criticize(run_dir))

    @classmethod
    def criticize_run(cls, run_dir: Path, device: torch.device) -> dict[str, Any]:
        return update_summary(
            run_dir, **cls.load_fit(run_dir, device).criticize(run_dir)
        )

    @classmethod
    def load_fit(cls, run_dir: Path, device: torch.device) -> FullBatchFit:
        config = read_run_config(cls.config_class, run_dir)
        record = cls.read_checkpoint(run_dir, device)
        return cls.fit_class.from_checkpoint(cls, config, record, device)

    @classmethod
    def read_checkpoint(cls, run_dir: Path, device: torch.device) -> dict[str, Any]:
        """The run's checkpoint record, upgraded (see :meth:`upgrade_checkpoint`)."""
        path = run_dir / CHECKPOINT
        record = cls.upgrade_checkpoint(load_checkpoint(path, cls.name, device))
        check_config_unedited(cls.config_class, run_dir, record)
        return check_entries(record, ENTRIES, path)

    @classmethod
    def smoke_fit_args(cls) -> list[str]:
        """``fit`` options for :attr:`smoke_settings`."""
        return command_line(cls.config_class, cls.smoke_settings)

    @classmethod
    def smoke_cases(cls, device: torch.device) -> Iterator[SmokeCase]:
        """One case per inference method, at :attr:`smoke_settings`."""
        for inference in cls.inference_methods:
            config = replace(
                cls.config_class(), **{**cls.smoke_settings, "inference": inference}
            )
            with caller_rng_kept([device]):
                pyro.set_rng_seed(config.seed)
                data, _ = split_data(cls.data(config, device))
                model, guide = cls.build(config, device)
                with torch.no_grad():
                    trace = poutine.trace(model).get_trace(*data)
            yield SmokeCase(
                name=f"{cls.name}-{inference}",
                inference=inference,
                model=model,
                guide=guide,
                elbo=lambda config=config: cls.elbo(config),
                fit_args=data,
                predict_args=cls.predict_args(config, data),
                observed_site=cls.observed_site,
                latent_sites=tuple(latent_sites(trace)),
            )
