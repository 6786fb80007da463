"""One SVI training loop: steps on the device, the NaN watch, checkpoints, Ctrl-C.

:func:`train_steps` takes SVI steps up to a total, keeping every loss on the device.
What a model saves is its own business: the loop calls ``save(step, losses)`` every
``checkpoint_every`` steps, after the last step and when Ctrl-C stops it, and each
time checks first that the losses, gradients and parameters are finite, so a
checkpoint never holds a state that a bad step ruined. Ctrl-C is held until the step
under way has finished, so the state saved is the state after a whole step and a
resumed run continues exactly (:func:`rng_state` and :func:`set_rng_state` carry the
generators, CUDA's included, which ``pyro.get_rng_state`` leaves out).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import pyro
import torch

from ppl_models import distributed
from ppl_models.errors import NumericalError, ResourceError
from ppl_models.inference.guard import NonFiniteWatch, nonfinite_parameters
from ppl_models.inference.memory import is_out_of_memory
from ppl_models.inference.progress import LossProgress
from ppl_models.inference.svi import svi_step
from ppl_models.seeding import derived_seed

Save = Callable[[int, torch.Tensor], None]
T = TypeVar("T")


@contextmanager
def held_interrupts() -> Iterator[Callable[[], bool]]:
    """Hold Ctrl-C (SIGINT) during the block: the yielded function says whether one
    came, and the loop stops at a step boundary. A second Ctrl-C interrupts at once.
    It holds nothing outside the main thread, where Python delivers no signals, nor
    where Ctrl-C is ignored (a background job).
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if not main or previous is signal.SIG_IGN:
        yield lambda: False
        return
    received = []

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, hold)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)


def train_steps(
    objective: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Callable[[], tuple[Any, ...]],
    steps: int,
    *,
    first_step: int = 1,
    save: Save | None = None,
    checkpoint_every: int | None = None,
    max_grad_norm: float | None = None,
    check_every: int = 100,
    desc: str = "svi",
    progress: bool | None = None,
    per: Callable[..., int] | None = None,
    log_lines: int = 10,
    grad_norms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Take SVI steps ``first_step`` .. ``steps`` (counted from 1 over a whole run,
    resumed parts included) on the arguments ``batch()`` gives for each step.

    :param save: called as ``save(step, losses)`` with the last step taken and this
        call's losses so far; every ``checkpoint_every`` steps, after the last step,
        and on Ctrl-C, after which KeyboardInterrupt is raised again.
    :param check_every: read the NaN watch on the host every this many steps.
    :param per: the progress bar shows the loss divided by ``per(*args)`` of the
        step's arguments (say the images in a batch: the loss per image).
    :param log_lines: where there is no terminal, log the loss about this many times
        over the call (0: never).
    :param grad_norms: (steps - first_step + 1,) on the device, filled with each
        step's total gradient norm, before any clipping.
    :returns: the loss before each step taken, (steps - first_step + 1,), on the
        objective's device.
    :raises NumericalError: at the first step whose loss or gradient was not finite,
        or before a save if a parameter is not finite.
    :raises ResourceError: if the device runs out of memory.
    """
    count = steps - first_step + 1
    device = next(objective.parameters()).device
    losses = torch.empty(max(count, 0), device=device)
    watch = NonFiniteWatch(device, check_every, first_step)
    step = first_step - 1
    saved = step

    def checkpoint() -> None:
        nonlocal saved
        _stop_if_nonfinite(watch, objective, steps, force=True)
        if save is not None and saved != step:
            save(step, losses[: step - first_step + 1])
            saved = step

    # Pyro's validation reads the host at every distribution; inputs were checked
    # once, before the first step (see make_objective).
    with (
        LossProgress(
            count,
            desc,
            enabled=progress,
            log_every=max(1, count // log_lines) if log_lines else None,
        ) as bar,
        pyro.validation_enabled(False),
        held_interrupts() as interrupted,
    ):
        try:
            for step in range(first_step, steps + 1):
                args = batch()
                loss = svi_step(
                    objective,
                    optimizer,
                    *args,
                    max_grad_norm=max_grad_norm,
                    watch=watch,
                )
                losses[step - first_step] = loss
                if grad_norms is not None:
                    grad_norms[step - first_step] = watch.last_grad_norm
                bar.update(loss, per=1 if per is None else per(*args))
                if step < steps:  # the last step is checked before the last save
                    _stop_if_nonfinite(watch, objective, steps)
                if interrupted():
                    checkpoint()
                    raise KeyboardInterrupt
                if checkpoint_every and step % checkpoint_every == 0:
                    checkpoint()
            checkpoint()
        except (RuntimeError, MemoryError) as error:
            # The CPU's allocator raises a plain RuntimeError, CUDA's a subclass.
            if not is_out_of_memory(error):
                raise
            raise ResourceError(
                f"the device ran out of memory at step {step} of {steps}: try "
                "less data per step"
            ) from None
    return losses


def _stop_if_nonfinite(
    watch: NonFiniteWatch,
    objective: torch.nn.Module,
    steps: int,
    force: bool = False,
) -> None:
    step = watch.first_bad_step(force=force)
    params = nonfinite_parameters(objective) if force or step is not None else []
    if step is None and not params:
        return
    where = f"at step {step} of {steps}" if step is not None else "after a step"
    raise NumericalError(
        f"the loss or its gradient became NaN or infinite {where}; non-finite "
        f"parameters: {', '.join(params[:5]) or 'none'}"
        f"{' ...' if len(params) > 5 else ''}; try a lower learning rate, or data "
        "on a smaller scale",
        step,
    )


def train_epochs(
    objective: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[], Iterator[tuple[Any, ...]]],
    epochs: int,
    steps_per_epoch: int,
    *,
    end_epoch: Callable[[int, torch.Tensor, float, torch.Tensor], T],
    first_epoch: int = 0,
    save: Callable[[T], None] | None = None,
    after_epoch: Callable[[int], None] | None = None,
    checkpoint_every: int = 1,
    max_grad_norm: float | None = None,
    check_every: int = 100,
    per: Callable[..., int] | None = None,
    progress: bool | None = None,
    seed: int | None = None,
) -> None:
    """Train epochs ``first_epoch + 1`` .. ``epochs`` (counted from 1 over a whole
    run) of ``steps_per_epoch`` steps on the batches that a fresh ``batches()``
    yields, each epoch's steps through :func:`train_steps` (steps numbered over the
    whole run).

    In a process group of several ranks (``torchrun``; see
    :mod:`ppl_models.distributed`) every minibatch model trains data-parallel
    here: ``batches()`` gives this rank's shard of the epoch, the objective steps
    as ``DistributedDataParallel`` with the ranks' gradients summed, each epoch's
    draws are seeded from ``seed``, the epoch and the rank (so a resumed run draws
    on exactly), ``end_epoch`` gets the losses summed over the ranks, and rank 0
    alone saves and shows progress.

    After each epoch, ``end_epoch(epoch, losses, seconds, grad_norms)`` gets its
    number, its losses and gradient norms (steps_per_epoch,) on the device and its
    training seconds, and returns the state to save (it may raise to stop
    training). ``save(state)`` writes it every ``checkpoint_every`` epochs and after
    the last, then ``after_epoch(epoch)`` runs. On Ctrl-C, held to the end of the
    step under way, the last epoch's state is saved if it was not yet, and
    KeyboardInterrupt is raised again: a run goes on from epoch boundaries, where it
    continues exactly.

    :raises NumericalError: as :func:`train_steps` does; ``error.step`` is the step.
    :raises ResourceError: if the device runs out of memory.
    """
    unsaved: list[T] = []  # the last epoch's state while it is not on disk
    device = next(objective.parameters()).device
    world = distributed.current()
    stepped = distributed.data_parallel(objective)
    if not world.writes:
        save, progress = None, False
    try:
        for epoch in range(first_epoch + 1, epochs + 1):
            start = time.perf_counter()
            if world.size > 1 and seed is not None:
                pyro.set_rng_seed(
                    derived_seed(seed, f"epoch {epoch}, rank {world.rank}")
                )
            epoch_batches = batches()
            grad_norms = torch.empty(steps_per_epoch, device=device)
            losses = train_steps(
                stepped,
                optimizer,
                partial(next, epoch_batches),
                epoch * steps_per_epoch,
                first_step=(epoch - 1) * steps_per_epoch + 1,
                max_grad_norm=max_grad_norm,
                check_every=check_every,
                desc=f"epoch {epoch}/{epochs}",
                progress=progress,
                per=per,
                log_lines=0,
                grad_norms=grad_norms,
            )
            losses = distributed.sum_across(losses)
            losses.sum().item()  # waits for the device: the epoch's time is real
            seconds = time.perf_counter() - start
            unsaved[:] = [end_epoch(epoch, losses, seconds, grad_norms)]
            if save is not None and (epoch % checkpoint_every == 0 or epoch == epochs):
                save(unsaved.pop())
            if after_epoch is not None:
                after_epoch(epoch)
        # The ranks finish together, with no communication under way: a rank that
        # leaves the process group while a peer's transfer is pending may abort.
        distributed.barrier()
    except KeyboardInterrupt:
        if save is not None and unsaved:
            save(unsaved.pop())
        raise


def run_svi(
    objective: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    steps: int,
    *args: Any,
    desc: str = "svi",
    progress: bool | None = None,
    check_every: int = 100,
) -> torch.Tensor:
    """Take ``steps`` full-batch SVI steps on ``args`` (:func:`train_steps` with the
    same arguments at every step and nothing saved).

    :returns: the loss before each step, (steps,), on the objective's device.
    :raises NumericalError: at the first step whose loss or gradient was NaN or
        infinite, naming the parameters that are no longer finite.
    """
    return train_steps(
        objective,
        optimizer,
        lambda: args,
        steps,
        check_every=check_every,
        desc=desc,
        progress=progress,
    )
