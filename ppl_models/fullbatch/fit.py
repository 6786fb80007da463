"""A fitted full-batch SVI model, and its one checkpoint format.

A checkpoint (``checkpoint.pt``) is a plain dict that ``torch.load`` reads with
``weights_only=True``::

    model_state, guide_state   the modules' state dicts
    data                       the model's arguments (a list of tensors on the CPU)
    extras                     what making the data gave besides (a dict of tensors,
                               say the truth of simulated data); only if any
    losses                     the loss before each step, (steps,)
    fit_seconds                training seconds, resumed parts included
    step, optimizer_state, rng the steps done, Adam's state and the random state,
                               which let a run go on exactly (``fit --resume``)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyro
import torch

from ppl_models.inference import initialize_guide
from ppl_models.io.checkpoint import load_state, save_checkpoint
from ppl_models.io.run_dir import CHECKPOINT, write_summary, write_table
from ppl_models.plots import plot_loss_trace, save_figure
from ppl_models.run_config import write_run_config
from ppl_models.seeding import caller_rng_kept, derived_seed
from ppl_models.validation import check_positive_int

if TYPE_CHECKING:
    from ppl_models.fullbatch.config import FullBatchConfig
    from ppl_models.fullbatch.spec import FullBatchSpec

#: the checkpoint entries that let a run go on from where it stopped
RESUME_KEYS = ("step", "optimizer_state", "rng")


#: what every full-batch checkpoint holds (after the model's upgrade of old ones)
ENTRIES = {
    "model_state": dict,
    "guide_state": dict,
    "data": list,
    "losses": torch.Tensor,
    "fit_seconds": (int, float),
}


@dataclass
class WithExtras:
    """What a spec's ``data`` hook may return to keep by-products of making the data
    (say the true parameters of simulated data): the fit holds them as ``extras``
    and its checkpoint keeps them.
    """

    #: the arguments, as the hook would return them alone
    args: tuple[torch.Tensor | None, ...]
    extras: dict[str, torch.Tensor]


@dataclass
class FullBatchFit:
    """A fitted full-batch SVI model: what ``fit_run`` trains and ``load_fit``
    rebuilds for a :class:`~ppl_models.fullbatch.FullBatchSpec` model. It implements
    :class:`ppl_models.fits.Fit`.

    ``data`` are the arguments the model and the guide were fitted on (what the
    spec's ``data`` hook gave), ``extras`` what else it gave (see
    :class:`WithExtras`); ``losses`` is the loss before each step, (steps,). A spec
    whose fit offers more names a subclass as its ``fit_class``.
    """

    spec: type[FullBatchSpec]
    config: FullBatchConfig
    model: torch.nn.Module
    guide: torch.nn.Module
    data: tuple[torch.Tensor | None, ...]
    losses: torch.Tensor
    device: torch.device
    fit_seconds: float = 0.0
    #: the torch.compile mode the fit ran with (None: plain Pyro)
    compile: str | None = None
    #: ``step``, ``optimizer_state`` and ``rng`` after the last step, for a
    #: checkpoint a run can go on from (empty where unknown)
    resume_state: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def from_checkpoint(
        cls,
        spec: type[FullBatchSpec],
        config: FullBatchConfig,
        record: dict[str, Any],
        device: torch.device,
    ) -> FullBatchFit:
        """Rebuild the model and guide from ``config`` and load a checkpoint record
        (:func:`~ppl_models.io.checkpoint.load_checkpoint`'s) into them.

        :raises CheckpointError: if the state dicts do not fit the config.
        """
        data = tuple(t.to(device) if torch.is_tensor(t) else t for t in record["data"])
        extras = {k: t.to(device) for k, t in record.get("extras", {}).items()}
        model, guide = spec.build(config, device)
        # Autoguides create their parameters on first call, before a state loads.
        initialize_guide(guide, *data)
        load_state(model, record["model_state"], "the checkpoint")
        load_state(guide, record["guide_state"], "the checkpoint")
        return cls(
            spec=spec,
            config=config,
            model=model,
            guide=guide,
            data=data,
            losses=record["losses"].to(device),
            device=device,
            fit_seconds=float(record["fit_seconds"]),
            resume_state={k: record[k] for k in RESUME_KEYS if k in record},
            extras=extras,
        )

    def checkpoint(self) -> dict[str, Any]:
        """The fit as a checkpoint record (see the module's docstring)."""
        extras = {k: t.cpu() for k, t in self.extras.items()}
        return {
            "model_state": self.model.state_dict(),
            "guide_state": self.guide.state_dict(),
            "data": [t.cpu() if torch.is_tensor(t) else t for t in self.data],
            "losses": self.losses.cpu(),
            "fit_seconds": self.fit_seconds,
            **({"extras": extras} if extras else {}),
            **self.resume_state,
        }

    def summary(self) -> dict[str, Any]:
        """The numbers of the fit: model, inference, device, seed, steps, first and
        last loss, training seconds, and the model's own (``summary_numbers``).
        """
        losses = self.losses.tolist()
        return {
            "model": self.spec.name,
            "inference": self.config.inference,
            "device": str(self.device),
            "compile": self.compile,
            "seed": self.config.seed,
            "steps": len(losses),
            "initial_loss": losses[0],
            "final_loss": losses[-1],
            **self.spec.summary_numbers(self),
            "fit_seconds": self.fit_seconds,
        }

    def criticize(self, out_dir: str | Path) -> dict[str, Any]:
        """Criticise the fit (the spec's ``criticize`` hook): write its plots into
        ``out_dir`` (created if need be) and return its numbers for the summary.

        It draws from a seed derived from the run's, so a fit and a later
        ``criticize`` report the same numbers; the caller's generators are kept.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with caller_rng_kept([self.device]):
            pyro.set_rng_seed(derived_seed(self.config.seed, "criticism"))
            return self.spec.criticize(self, out_dir)

    def to_inference_data(self, num_samples: int = 200) -> Any:
        """The fit as ArviZ's InferenceData: ``num_samples`` draws of the latents
        from the guide, replicated data, the observed data and, for a guide with
        spread, the log likelihood of each data point (see
        :func:`ppl_models.criticism.inference_data.to_inference_data`). Drawn from
        a seed derived from the run's; the caller's generators are kept. Needs the
        ``arviz`` extra.
        """
        from ppl_models.criticism.inference_data import to_inference_data

        check_positive_int("num_samples", num_samples)
        with caller_rng_kept([self.device]):
            pyro.set_rng_seed(derived_seed(self.config.seed, "inference data"))
            return to_inference_data(
                self.model,
                self.guide,
                fit_args=self.data,
                predict_args=self.spec.predict_args(self.config, self.data),
                observed_site=self.spec.observed_site,
                num_samples=num_samples,
                dims=self.spec.dims(self.config),
                log_likelihood=self.spec.log_likelihood(self),
            )

    def save(self, run_dir: str | Path) -> None:
        """Write the fit into ``run_dir`` (created if need be), replacing what is
        there: ``config.json``, ``checkpoint.pt`` and :meth:`write_results`'s files.
        ``ppl_models.load_fit(run_dir)`` then rebuilds it. It takes no lock: hold
        :func:`~ppl_models.io.run_dir.writing_run` where others may write too.
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(run_dir, self.spec.name, self.config)
        save_checkpoint(run_dir / CHECKPOINT, self.spec.name, self.checkpoint())
        self.write_results(run_dir)

    def write_results(self, run_dir: Path) -> dict[str, Any]:
        """Write ``metrics.csv`` (step, loss), ``loss.png`` and ``summary.json``
        (afresh: no criticism yet); return the summary.
        """
        losses = self.losses.tolist()
        steps = list(range(1, len(losses) + 1))
        write_table(run_dir, "metrics.csv", {"step": steps, "loss": losses})
        inference, label = self.config.inference, self.spec.label or self.spec.name
        figure = plot_loss_trace(
            {inference: losses}, title=f"{label}, {inference}: loss trace"
        )
        save_figure(figure, run_dir / "loss.png")
        return write_summary(run_dir, self.summary())
