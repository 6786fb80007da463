"""PPCA checkpoints: what a fit saves, and how a resumed fit takes it back.

A checkpoint is a plain dict of tensors and numbers (``torch.load`` with
``weights_only=True`` reads it): the model's and the guide's state dicts, the data
in the model's layout (data_dim, N), the losses so far, the training seconds, the
true axes of simulated data, and, for a fit that can go on, the steps done, the
optimizer's state and the random generators' state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pyro.infer.autoguide import AutoGuide

from ppl_models.errors import CheckpointError, UsageError
from ppl_models.inference.trainer import set_rng_state
from ppl_models.io.checkpoint import load_state

if TYPE_CHECKING:
    from ppl_models.models.ppca.fit import PPCAFit
    from ppl_models.models.ppca.model import PPCA


def checkpoint_payload(fit: PPCAFit, **state: Any) -> dict[str, Any]:
    """A fit as a checkpoint: parameters, the data, the losses, the true axes if
    known, and ``state`` (for a resumable one: ``step``, ``optimizer_state``,
    ``rng``).
    """
    payload = {
        "model_state": fit.model.state_dict(),
        "guide_state": fit.guide.state_dict(),
        "x": fit.x.cpu(),
        "losses": fit.losses.cpu(),
        "fit_seconds": fit.fit_seconds,
        **state,
    }
    if fit.w_true is not None:
        payload["w_true"] = fit.w_true.cpu()
    return payload


def resumed_steps(record: dict[str, Any] | None, steps: int) -> int:
    """The steps a checkpoint record has done (0 for none), if it can go on to
    ``steps`` in all.

    :raises CheckpointError: for a checkpoint without optimizer and random state.
    :raises UsageError: if ``steps`` is not beyond the steps done.
    """
    if record is None:
        return 0
    if "optimizer_state" not in record:
        raise CheckpointError(
            "the checkpoint holds no optimizer and random state (it was written "
            "before PPCA runs could resume): fit again with --overwrite"
        )
    if steps <= record["step"]:
        raise UsageError(
            f"steps={steps}, but the checkpoint has {record['step']} steps already: "
            "ask for more steps in all"
        )
    return record["step"]


def restore(
    model: PPCA,
    guide: AutoGuide,
    optimizer: torch.optim.Optimizer,
    record: dict[str, Any],
) -> tuple[torch.Tensor, float]:
    """Load a checkpoint's parameters, optimizer state and random state; return its
    losses (steps,) and training seconds.
    """
    load_state(model, record["model_state"], "the checkpoint")
    load_state(guide, record["guide_state"], "the checkpoint")
    optimizer.load_state_dict(record["optimizer_state"])
    set_rng_state(record["rng"])
    return record["losses"], float(record["fit_seconds"])
