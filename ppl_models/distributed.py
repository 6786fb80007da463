"""Data-parallel training across processes, with PyTorch's own engine.

``torchrun --nproc-per-node N -m ppl_models fit vae ...`` starts N processes and
gives each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`start` joins them
into a process group (NCCL between GPUs, gloo on CPUs) and picks each rank's
device. Training then wraps the ELBO module in ``DistributedDataParallel`` with a
hook that sums the ranks' gradients, so a step over N shards of B images takes the
gradient of the summed loss over the N x B images, as one process with a batch of
N x B would (:func:`sum_gradients`).

Everything here is a no-op in a single process: the zoo's numbers there are the
same as without this module.
"""

# No "from __future__ import annotations": DDP checks a hook's annotations, which
# must be the types themselves.
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ppl_models.device import resolve_device
from ppl_models.errors import UsageError

#: seconds a collective may wait for a rank before the job ends with an error
#: (``PPL_MODELS_DIST_TIMEOUT``): a rank that died must not leave the others
#: waiting forever
DEFAULT_TIMEOUT_S = 120


@dataclass(frozen=True)
class World:
    """This process's place among those training together."""

    rank: int = 0
    size: int = 1

    @property
    def writes(self) -> bool:
        """Whether this rank writes the run directory (rank 0 alone does)."""
        return self.rank == 0


def launched() -> bool:
    """Whether ``torchrun`` (or another launcher) started several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> World:
    """The world of the process group this process is in (one process if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size())


def start(device: str) -> torch.device:
    """Join the process group the launcher set up; return this rank's device.

    :param device: the command's ``--device``: under ``auto`` (or ``cuda``) a rank
        computes on ``cuda:LOCAL_RANK`` where there are GPUs, else on the CPU.
    :raises UsageError: for a launch this zoo cannot train with.
    """
    if not dist.is_available():
        raise UsageError("this PyTorch was built without torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device in ("auto", "cuda") and torch.cuda.is_available():
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    else:
        chosen = resolve_device("cpu" if device == "auto" else device)
    timeout = float(os.environ.get("PPL_MODELS_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    dist.init_process_group(
        backend="nccl" if chosen.type == "cuda" else "gloo",
        timeout=datetime.timedelta(seconds=timeout),
    )
    return chosen


def stop() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_across(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks, in place (itself in one process)."""
    if current().size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def min_across(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s least value over the ranks, in place (itself in one process)."""
    if current().size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if current().size > 1:
        dist.barrier()


def sum_gradients(
    _state: object, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """A ``DistributedDataParallel`` communication hook that sums the ranks'
    gradients (DDP's own averages them): the gradient of the loss summed over every
    rank's images, as one process computes it on all of them."""
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    return work.get_future().then(lambda future: future.value()[0])


def data_parallel(objective: torch.nn.Module) -> torch.nn.Module:
    """``objective`` as a training step calls it: itself in one process, else
    ``DistributedDataParallel`` over it with the ranks' gradients summed."""
    if current().size == 1:
        return objective
    device = next(objective.parameters()).device
    wrapped = DistributedDataParallel(
        objective, device_ids=[device.index] if device.type == "cuda" else None
    )
    wrapped.register_comm_hook(None, sum_gradients)
    return wrapped
