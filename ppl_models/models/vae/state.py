"""What a VAE checkpoint holds for a run to go on, and how a run goes on from it."""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any

import torch

from ppl_models.errors import CheckpointError
from ppl_models.io.checkpoint import load_state
from ppl_models.models.vae.history import History
from ppl_models.models.vae.model import VAE
from ppl_models.seeding import rng_state, set_rng_state

#: the checkpoint entries, besides the weights and the history, that let a run go on
RESUME_KEYS = ("optimizer_state", "rng")


def checkpoint_payload(
    vae: VAE, optimizer: torch.optim.Optimizer, history: History, copy: bool = False
) -> dict[str, Any]:
    """Everything needed to resume: parameters, optimizer state, epoch, RNG state.

    :param copy: clone every tensor, so the payload stays as it is while training
        goes on.
    """
    payload = {
        "config": vae.config.to_dict(),
        "vae_state": vae.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "epoch": history.epochs_done,
        "history": asdict(history),
        "rng": rng_state(),  # the CUDA generators too
    }
    return copy_tensors(payload) if copy else payload


def copy_tensors(obj: Any) -> Any:
    """``obj`` with every tensor in its dicts, lists and tuples cloned."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {key: copy_tensors(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(copy_tensors(value) for value in obj)
    return obj


def restore(
    vae: VAE,
    optimizer: torch.optim.Optimizer,
    record: dict[str, Any],
    source: Any = "the checkpoint",
) -> History:
    """Load a :func:`checkpoint_payload` into ``vae`` and ``optimizer``; set the RNG.

    :param source: where ``record`` comes from, for the messages.
    :raises CheckpointError: naming what in ``record`` does not fit.
    """
    load_state(vae, record["vae_state"], source)
    # Copies: Adam updates its loaded state in place and the history grows by
    # appending, which would change the caller's record; a second resume from it
    # would then go on from elsewhere.
    try:
        optimizer.load_state_dict(copy.deepcopy(record["optimizer_state"]))
        set_rng_state(record["rng"])
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(
            f"{source}: its optimizer or random state cannot go on: {error}"
        ) from None
    return History(**copy.deepcopy(record["history"]))
