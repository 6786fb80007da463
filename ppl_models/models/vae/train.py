"""Training a VAE by amortized SVI, epoch by epoch, with checkpoints to resume from.

The training set lives on the device and batches come from an on-device permutation.
Per-step losses are summed on the device; the host reads them once per epoch (and
when the progress bar refreshes). Evaluation runs under its own forked RNG, so
evaluating or not never changes the training draws, and a run resumed from a
checkpoint takes exactly the steps the uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer import ELBO

from ppl_models import distributed
from ppl_models.data.batches import shard_batches, train_batches
from ppl_models.data.images import ImageData
from ppl_models.errors import (
    NumericalError,
    ResourceError,
)
from ppl_models.inference import make_objective
from ppl_models.inference.compiled import check_compile_mode
from ppl_models.inference.guard import nonfinite_parameters, nonfinite_sites
from ppl_models.inference.memory import is_out_of_memory
from ppl_models.inference.params import local_params
from ppl_models.inference.progress import logger
from ppl_models.inference.trainer import train_epochs
from ppl_models.io.checkpoint import save_checkpoint
from ppl_models.models.vae.evaluate import evaluate_elbo
from ppl_models.models.vae.history import History
from ppl_models.models.vae.model import VAE, make_elbo
from ppl_models.models.vae.state import RESUME_KEYS, checkpoint_payload, restore
from ppl_models.seeding import derived_seed
from ppl_models.validation import check_positive_float, check_positive_int


@dataclass
class TrainSettings:
    """How to train: objective, optimisation and schedule."""

    elbo: str = "trace"
    num_particles: int = 1
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    #: clip the gradients' total norm to this value (None: no clipping)
    clip_grad: float | None = None
    #: write a checkpoint every this many epochs (and at the last one, and on Ctrl-C)
    checkpoint_every: int = 1
    #: read the device's NaN/Inf watch every this many steps
    check_every: int = 100
    #: trace and compile the ELBO with this torch.compile mode (None: plain Pyro)
    compile: str | None = None

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("num_particles", self.num_particles)
        check_positive_float("lr", self.lr)
        if self.clip_grad is not None:
            check_positive_float("clip_grad", self.clip_grad)
        check_positive_int("checkpoint_every", self.checkpoint_every)
        check_positive_int("check_every", self.check_every)
        check_compile_mode(self.compile)


@dataclass
class Trained:
    """What :func:`train_vae` ends with."""

    history: History
    #: ``optimizer_state`` and ``rng`` after the last epoch, which a checkpoint
    #: needs to go on from there (empty if no epoch ran and none was resumed)
    resume_state: dict[str, Any]


def train_vae(
    vae: VAE,
    data: ImageData,
    settings: TrainSettings,
    *,
    checkpoint_path: Path | None = None,
    resume_from: dict[str, Any] | None = None,
    progress: bool | None = None,
    on_epoch_end: Callable[[History], None] | None = None,
    elbo: ELBO | None = None,
    model_name: str = "vae",
) -> Trained:
    """Train ``vae`` on ``data.train`` for ``settings.epochs`` epochs in all.

    A network module with a method ``before_step(steps_done, steps_per_epoch)``
    has it called before every step with the steps the run has taken, resumed ones
    included: a schedule (the categorical VAE's temperature) that is a function of
    them goes on exactly in a resumed run.

    :param checkpoint_path: where to write a checkpoint after every epoch.
    :param resume_from: a checkpoint record (see :func:`checkpoint_payload`) to go on
        from; the epochs it already did count towards ``settings.epochs``.
    :param elbo: the objective (default: ``make_elbo`` of ``settings``).
    :param model_name: the model the checkpoints are written for.
    :returns: the history of every epoch, resumed ones included, and the state to
        go on from.
    """
    if elbo is None:
        elbo = make_elbo(settings.elbo, vae.config, settings.num_particles)
    # A batch as training sees it (binarized), for the guide's first call and
    # Pyro's checks; drawn on forked generators, so the training draws are unchanged.
    with torch.random.fork_rng(devices=_cuda_devices(data.train)):
        probe = next(train_batches(data, 2))
    objective = make_objective(
        vae.model, vae.guide, elbo, probe, compile=settings.compile
    )
    optimizer = torch.optim.Adam(objective.parameters(), lr=settings.lr)
    world = distributed.current()
    history = History()
    resume_state = {k: resume_from[k] for k in RESUME_KEYS} if resume_from else {}
    if resume_from is None:
        pyro.set_rng_seed(settings.seed)
    else:
        history = restore(vae, optimizer, resume_from)
    # Several ranks each take an equal share of every epoch (padded to one
    # length), so an epoch covers this many images.
    num_train = -(-data.train.shape[0] // world.size) * world.size
    steps_per_epoch = -(-(num_train // world.size) // settings.batch_size)
    before_step = getattr(vae, "before_step", None)
    at_hand: list[torch.Tensor] = []  # the batch of the step under way
    evaluating = False  # whether a NumericalError is end_epoch's own

    def batches() -> Iterator[tuple[torch.Tensor]]:
        if world.size > 1:  # this rank's share of the epoch's order
            epoch = history.epochs_done + 1
            seed = derived_seed(settings.seed, f"order of epoch {epoch}")
            source = shard_batches(
                data, settings.batch_size, world.rank, world.size, seed
            )
        else:
            source = train_batches(data, settings.batch_size)
        steps_done = history.epochs_done * steps_per_epoch
        for step, x in enumerate(source, steps_done):
            at_hand[:] = [x]
            if before_step is not None:
                before_step(step, steps_per_epoch)
            yield (x,)

    def end_epoch(
        epoch: int, losses: torch.Tensor, seconds: float, grad_norms: torch.Tensor
    ) -> dict:
        nonlocal evaluating
        evaluating = True
        history.train_elbo.append(-float(losses.sum()) / num_train)
        history.grad_norm.append(float(grad_norms.mean()))
        history.train_seconds.append(seconds)
        history.train_images += num_train
        test_elbo = held_out_elbo(vae, data, settings.seed)
        _stop_if_state_nonfinite(vae, test_elbo, epoch, checkpoint_path)
        history.test_elbo.append(test_elbo)
        if world.writes:  # one log, rank 0's, where several ranks train
            logger.info(
                "epoch %d/%d: train ELBO %.2f, test ELBO %.2f nats per image, %.1f s",
                epoch,
                settings.epochs,
                history.train_elbo[-1],
                test_elbo,
                seconds,
            )
        payload = checkpoint_payload(vae, optimizer, history, copy=True)
        resume_state.update({k: payload[k] for k in RESUME_KEYS})
        evaluating = False
        return payload

    def save(payload: dict) -> None:
        if checkpoint_path is not None:
            # A data-parallel run records how many ranks it had: a resume needs as
            # many (a record without it is one process's).
            several = {"world_size": world.size} if world.size > 1 else {}
            save_checkpoint(checkpoint_path, model_name, {**payload, **several})

    def after_epoch(epoch: int) -> None:
        if on_epoch_end is not None:
            on_epoch_end(history)

    try:
        # Pyro's argument checks read every distribution's parameters on the host,
        # one sync per step (evaluation included); inputs were checked once at the
        # boundary instead, and a NaN that training produces is caught by the
        # watch, which reports it once, so Pyro's per-step NaN warnings are silenced.
        with pyro.validation_enabled(False), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Encountered NaN", UserWarning)
            train_epochs(
                objective,
                optimizer,
                batches,
                settings.epochs,
                steps_per_epoch,
                end_epoch=end_epoch,
                first_epoch=history.epochs_done,
                save=save,
                after_epoch=after_epoch,
                checkpoint_every=settings.checkpoint_every,
                max_grad_norm=settings.clip_grad,
                check_every=settings.check_every,
                per=len,  # the loss per image
                progress=progress,
                seed=settings.seed,
            )
    except NumericalError as error:
        if evaluating:
            raise
        epoch = history.epochs_done + 1
        raise _nonfinite_error(
            vae, at_hand, error.step, epoch, checkpoint_path
        ) from None
    except (RuntimeError, MemoryError) as error:
        # The loop's steps report running out of memory as a ResourceError; the
        # CPU's allocator may also fail between steps (evaluation, a checkpoint's
        # copy), with a plain RuntimeError.
        if not isinstance(error, ResourceError) and not is_out_of_memory(error):
            raise
        raise ResourceError(
            f"the device ran out of memory in epoch {history.epochs_done + 1} with "
            f"batch size {settings.batch_size}: try a smaller --batch-size"
            + _checkpoint_note(checkpoint_path)
        ) from None
    return Trained(history, resume_state)


def _nonfinite_error(
    vae: VAE,
    at_hand: list[torch.Tensor],
    step: int | None,
    epoch: int,
    checkpoint_path: Path | None,
) -> NumericalError:
    # The sites are those that are non-finite now, on the batch at hand; by now the
    # parameters may have taken a NaN step too, so they are listed as well.
    sites = []
    if at_hand:
        with local_params(), pyro.validation_enabled(False):
            sites = nonfinite_sites(vae.model, vae.guide, at_hand[0])
    sites = sites or ["none on the current batch"]
    params = nonfinite_parameters(vae) or ["none"]
    where = f"at step {step}" if step is not None else "after a step"
    return NumericalError(
        f"the loss or its gradient became NaN or infinite {where} "
        f"(epoch {epoch}); non-finite log-probabilities at sites: "
        f"{', '.join(sites)}; non-finite parameters: {', '.join(params[:5])}"
        f"{' ...' if len(params) > 5 else ''}; try a lower --lr or --clip-grad"
        + _checkpoint_note(checkpoint_path),
        step,
    )


def _stop_if_state_nonfinite(
    vae: VAE, test_elbo: float, epoch: int, checkpoint_path: Path | None
) -> None:
    # The watch sees each step's loss and gradients, and the parameters after the
    # epoch's last step; weights that are finite yet give no finite ELBO are not
    # checkpointed either.
    params = nonfinite_parameters(vae)
    if math.isfinite(test_elbo) and not params:
        return
    raise NumericalError(
        f"after epoch {epoch} the weights give a held-out ELBO of {test_elbo}; "
        f"non-finite parameters: {', '.join(params[:5]) or 'none'}"
        f"{' ...' if len(params) > 5 else ''}; "
        "try a lower --lr or --clip-grad" + _checkpoint_note(checkpoint_path)
    )


def _checkpoint_note(checkpoint_path: Path | None) -> str:
    if checkpoint_path is None or not checkpoint_path.is_file():
        return ""
    return f"; the last checkpoint, {checkpoint_path}, is intact"


def _cuda_devices(tensor: torch.Tensor) -> list[torch.device]:
    return [tensor.device] if tensor.device.type == "cuda" else []


def held_out_elbo(vae: VAE, data: ImageData, seed: int) -> float:
    """Test ELBO (nats per image) under a forked, seeded RNG, so that evaluating
    leaves the training draws exactly as they would have been without it.
    """
    with torch.random.fork_rng(devices=_cuda_devices(data.test)):
        torch.manual_seed(derived_seed(seed, "evaluation"))
        with vae.reported_model():
            return evaluate_elbo(vae, data.test, shard=True)  # every rank calls it
