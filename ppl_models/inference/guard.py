"""Catching NaN and infinite losses and gradients without a host sync per step.

:class:`NonFiniteWatch` keeps, on the device, a step counter and the first step whose
loss or gradient norm was not finite. The host reads that one number only every
``check_every`` steps (and when asked to), so the training loop keeps the device busy;
the step it reports is still the exact step where the fault first appeared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine

from ppl_models import distributed


class NonFiniteWatch:
    """Watches losses and gradient norms for NaN/Inf, on the device.

    :param device: where the counters live (the training device).
    :param check_every: read the counters on the host every this many steps.
    :param first_step: the number of the next step (steps count from 1).
    """

    def __init__(
        self, device: torch.device, check_every: int = 100, first_step: int = 1
    ) -> None:
        self.check_every = check_every
        self._step = torch.full((), first_step - 1, dtype=torch.long, device=device)
        self._first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self._since_check = 0
        self.last_grad_norm: torch.Tensor | None = None

    def observe(
        self, loss: torch.Tensor, grad_norm: torch.Tensor | None = None
    ) -> None:
        """Record one step's loss (0-dim) and gradient norm (0-dim), on the device;
        the norm is kept as :attr:`last_grad_norm` for the trainer's records.
        """
        self.last_grad_norm = grad_norm
        self._step += 1
        bad = ~torch.isfinite(loss)
        if grad_norm is not None:
            bad = bad | ~torch.isfinite(grad_norm)
        unseen = self._first_bad < 0
        self._first_bad = torch.where(bad & unseen, self._step, self._first_bad)
        self._since_check += 1

    def first_bad_step(self, force: bool = False) -> int | None:
        """The first non-finite step, or ``None``; reads the device only every
        ``check_every`` calls unless ``force``.
        """
        if not force and self._since_check < self.check_every:
            return None
        self._since_check = 0
        first = self._first_bad
        if distributed.current().size > 1:
            # Every rank reads at the same steps: agree on the earliest bad one, so
            # all stop together with the same verdict.
            first = torch.where(first >= 0, first, torch.iinfo(first.dtype).max)
            first = distributed.min_across(first.clone())
            first = torch.where(first == torch.iinfo(first.dtype).max, -1, first)
        step = int(first)
        return step if step >= 0 else None


def nonfinite_sites(
    model: Callable[..., Any], guide: Callable[..., Any], *args: Any
) -> list[str]:
    """Sample sites of ``guide`` then ``model`` (run on ``args``, the guide's draws
    replayed) whose log-probabilities are NaN or infinite.
    """
    with torch.no_grad():
        guide_trace = poutine.trace(guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args
        )
        bad = []
        for role, trace in (("guide", guide_trace), ("model", model_trace)):
            trace.compute_log_prob()
            for name, node in trace.nodes.items():
                log_prob = node.get("log_prob") if node["type"] == "sample" else None
                if log_prob is not None and not torch.isfinite(log_prob).all():
                    bad.append(f"{name} ({role})")
    return bad


def nonfinite_parameters(module: torch.nn.Module) -> list[str]:
    """Names of ``module``'s parameters holding a NaN or an infinity (one host read)."""
    named = list(module.named_parameters())
    if not named:
        return []
    finite = torch.stack([torch.isfinite(value).all() for _, value in named]).tolist()
    return [name for (name, _), ok in zip(named, finite, strict=True) if not ok]
