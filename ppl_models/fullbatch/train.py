"""Training a full-batch SVI model: seeding, checkpoints, exact resume."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyro
import torch

from ppl_models.errors import CheckpointError, UsageError
from ppl_models.fullbatch.fit import FullBatchFit, WithExtras
from ppl_models.inference import make_objective, train_steps
from ppl_models.inference.compiled import check_compile_mode
from ppl_models.io.checkpoint import save_checkpoint
from ppl_models.seeding import caller_rng_kept, rng_state, set_rng_state
from ppl_models.settings import check_settings
from ppl_models.validation import check_choice

if TYPE_CHECKING:
    from ppl_models.fullbatch.config import FullBatchConfig
    from ppl_models.fullbatch.spec import FullBatchSpec


def check_config(spec: type[FullBatchSpec], config: FullBatchConfig) -> None:
    """Refuse an inference method the model does not have. (Every setting's own
    range is checked when the config is made, by its declaration.)

    :raises UsageError: naming the method and those there are.
    """
    check_choice("inference method", config.inference, tuple(spec.inference_methods))
    check_settings(config)  # a config changed in place since it was made


def steps_done(record: dict[str, Any] | None, steps: int) -> int:
    """The steps a checkpoint record has done (0 for none), if it can go on to
    ``steps`` in all.

    :raises CheckpointError: for a checkpoint without optimizer and random state.
    :raises UsageError: if ``steps`` is not beyond the steps done.
    """
    if record is None:
        return 0
    if "optimizer_state" not in record:
        raise CheckpointError(
            "the checkpoint holds no optimizer and random state: it cannot go on; "
            "fit again with --overwrite"
        )
    if steps <= record["step"]:
        raise UsageError(
            f"steps={steps}, but the checkpoint has {record['step']} steps already: "
            "ask for more steps in all"
        )
    return record["step"]


def split_data(
    data: tuple[torch.Tensor | None, ...] | WithExtras,
) -> tuple[tuple[torch.Tensor | None, ...], dict[str, torch.Tensor]]:
    """A ``data`` hook's return value as the arguments and the extras."""
    if isinstance(data, WithExtras):
        return tuple(data.args), dict(data.extras)
    return tuple(data), {}


def train(
    spec: type[FullBatchSpec],
    config: FullBatchConfig,
    device: torch.device,
    *,
    compile: str | None = None,
    checkpoint_path: Path | None = None,
    resume_from: dict[str, Any] | None = None,
    progress: bool | None = None,
    data: tuple[torch.Tensor | None, ...] | None = None,
) -> FullBatchFit:
    """Fit ``spec``'s model as ``config`` says: ``config.steps`` full-batch steps of
    Adam on the spec's ELBO, through :func:`~ppl_models.inference.train_steps` (the
    NaN watch, Ctrl-C held to a step's end).

    :param checkpoint_path: write a checkpoint there every ``checkpoint_every``
        steps, after the last step and on Ctrl-C.
    :param resume_from: a checkpoint record to go on from (its data, parameters,
        optimizer and random state): the fit ends bitwise as a straight one would.
    :param data: the arguments to fit on, in place of the spec's ``data`` hook's
        (a fit from Python on the caller's data).
    """
    check_config(spec, config)
    check_compile_mode(compile)
    done = steps_done(resume_from, config.steps)
    # Seeded, yet the caller's generators are as they were after the fit.
    with caller_rng_kept([device]):
        pyro.set_rng_seed(config.seed)
        if resume_from is None:
            data, extras = split_data(
                spec.data(config, device) if data is None else data
            )
            model, guide = spec.build(config, device)
            spec.start_from(model, guide, data)
            no_losses = torch.empty(0, device=device)
            fit = spec.fit_class(spec, config, model, guide, data, no_losses, device)
            fit.extras = extras
        else:
            fit = spec.fit_class.from_checkpoint(spec, config, resume_from, device)
        previous = fit.losses[:done]
        fit.compile, seconds = compile, fit.fit_seconds
        objective = make_objective(
            fit.model, fit.guide, spec.elbo(config), *fit.data, compile=compile
        )
        optimizer = torch.optim.Adam(objective.parameters(), lr=config.lr)
        if resume_from is not None:
            # A copy: Adam updates its loaded state in place, which would change
            # the caller's record, and a second resume from it would differ.
            optimizer.load_state_dict(copy.deepcopy(resume_from["optimizer_state"]))
            # Last: building and checking the objective above drew numbers.
            set_rng_state(resume_from["rng"])
        start = time.perf_counter()

        def save(step: int, losses: torch.Tensor) -> None:
            # The fit as it stands; its seconds are the ones it then reports.
            fit.losses = torch.cat([previous, losses])
            fit.fit_seconds = seconds + time.perf_counter() - start
            state = {"step": step, "optimizer_state": optimizer.state_dict()}
            fit.resume_state = {**state, "rng": rng_state()}
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, spec.name, fit.checkpoint())

        train_steps(
            objective,
            optimizer,
            lambda: fit.data,
            config.steps,
            first_step=done + 1,
            save=save,
            checkpoint_every=config.checkpoint_every,
            desc=f"{spec.name} {config.inference}",
            progress=progress,
        )
    return fit
