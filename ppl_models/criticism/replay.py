"""Replaying inferred latents through a model: Pyro's counterpart of an interceptor.

Both functions compose Pyro's handlers the way its ``poutine`` docs do: ``condition``
pins sample sites to given values, ``replay`` reuses the values of another trace,
``trace`` records what the model did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from pyro import poutine
from pyro.poutine import Trace


def replay_latents(
    model: Callable[..., Any], latents: Mapping[str, torch.Tensor], *args: Any
) -> Trace:
    """Run ``model(*args)`` with the sites in ``latents`` fixed to the given values.

    Sites not named (typically the observations, when ``args`` carry no data) are
    drawn from the model, so their values are data generated from the inferred
    latents.

    :returns: the model's trace; ``trace.nodes[site]["value"]`` has the site's shape.
    """
    with torch.no_grad():
        return poutine.trace(poutine.condition(model, data=dict(latents))).get_trace(
            *args
        )


def replay_guide(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    model_args: tuple = (),
    guide_args: tuple | None = None,
) -> Trace:
    """Draw the latents from ``guide`` and run ``model`` with those values replayed.

    :param model_args: arguments of the model run, e.g. with the data set to ``None``
        so the observed sites are generated.
    :param guide_args: arguments of the guide run (default: ``model_args``).
    :returns: the model's trace.
    """
    guide_args = model_args if guide_args is None else guide_args
    with torch.no_grad():
        guide_trace = poutine.trace(guide).get_trace(*guide_args)
        return poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *model_args
        )
