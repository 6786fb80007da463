"""Stochastic variational inference with plain PyTorch optimizers.

An ELBO applied to a model and a guide is an ``nn.Module`` (Pyro's ELBOModule), so
its parameters are ordinary ``state_dict`` entries and any ``torch.optim`` optimizer
fits them. Losses stay on the device; nothing here calls ``.item()`` per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.infer.elbo import ELBOModule

from ppl_models.inference.compiled import CompiledObjective
from ppl_models.inference.guard import NonFiniteWatch
from ppl_models.inference.params import ensure_local_state, local_params


def make_objective(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    elbo: ELBO,
    *args: Any,
    compile: str | None = None,
) -> torch.nn.Module:
    """``elbo(model, guide)`` as an ``nn.Module`` whose call returns the loss.

    The guide is initialised on ``args`` first, so ``.parameters()`` is complete and
    an optimizer can be built over it. The loss is computed in Pyro's module-local
    mode (:mod:`~ppl_models.inference.params`): the parameters are the modules' own,
    and Pyro's global param store and settings are left as the caller has them.

    :param compile: a :func:`torch.compile` mode (see
        :data:`~ppl_models.inference.compiled.COMPILE_MODES`) to trace and compile
        the loss with; ``None`` runs the model and guide through Pyro every step.
    """
    ensure_local_state(model)  # the guide's is seen to by initialize_guide
    initialize_guide(guide, *args)
    objective = LocalELBOModule(model, guide, elbo)
    check_objective(objective, *args)
    return objective if compile is None else CompiledObjective(objective, compile)


class LocalELBOModule(ELBOModule):
    """Pyro's ``elbo(model, guide)`` module, its loss computed in module-local mode.

    ``LocalELBOModule(model, guide, elbo)(*args)`` is the negative ELBO, 0-dim and
    differentiable; its parameters are the model's and the guide's.
    """

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The negative ELBO on ``args``."""
        with local_params():
            return super().forward(*args, **kwargs)


def check_objective(objective: torch.nn.Module, *args: Any) -> None:
    """Evaluate ``objective(*args)`` once with Pyro's validation on.

    Training steps run with validation off, since its checks read the host; this
    call gives every fit Pyro's checks (distribution arguments and supports, model
    and guide sites that match, plate shapes) before its first step. It draws on
    forked generators, so training takes the draws it would take without it.

    :raises ValueError: (Pyro's or PyTorch's) naming what failed.
    """
    devices = [a.device for a in args if torch.is_tensor(a) and a.device.type == "cuda"]
    with (
        torch.random.fork_rng(devices=sorted(set(devices), key=str)),
        torch.no_grad(),
        pyro.validation_enabled(True),
    ):
        objective(*args)


def initialize_guide(guide: Callable[..., Any], *args: Any) -> None:
    """Run ``guide(*args)`` once, silently, so parameters that autoguides create on
    first use exist (before building an optimizer or loading a state dict). It runs
    in module-local mode, so they are created in the guide, not in the param store.
    """
    ensure_local_state(guide)
    with torch.no_grad(), poutine.block(), local_params():
        guide(*args)


def svi_step(
    objective: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *args: Any,
    max_grad_norm: float | None = None,
    watch: NonFiniteWatch | None = None,
) -> torch.Tensor:
    """One gradient step on the negative ELBO; returns the loss, a 0-dim tensor.

    :param max_grad_norm: clip the gradients' total norm to this value.
    :param watch: records the loss and gradient norm, to catch NaN/Inf on the device.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = objective(*args)
    loss.backward()
    if max_grad_norm is not None or watch is not None:
        params = [
            p for g in optimizer.param_groups for p in g["params"] if p.grad is not None
        ]
        if max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if watch is not None:
            watch.observe(loss.detach(), norm)
    optimizer.step()
    return loss.detach()
