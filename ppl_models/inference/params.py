"""Where the zoo's parameters live, without touching the caller's Pyro.

Pyro keeps parameters in one of two places, chosen by the process-wide setting
``module_local_params``: in its global param store (the default, which
``pyro.optim`` and ``SVI`` use), or in the modules that own them (module-local mode,
in which an ELBO applied to a model and a guide is an ``nn.Module`` that any
``torch.optim`` optimizer fits). The zoo fits in module-local mode, so that two fits
in one process never share a parameter and checkpoints are plain state dicts; it
switches the setting on only for its own work and restores it after, so a user's
param store and ``PyroModule``\\ s behave as they did before the zoo was imported.

- :func:`local_params`: module-local mode for a block (a context manager and a
  decorator).
- :class:`LocalParams`: a mixin for the zoo's ``PyroModule``\\ s (models and
  autoguides) that keeps their parameters in the module on every call, so a plain
  ``SVI`` with ``pyro.optim`` trains them and the param store never sees them.
- :func:`register_module`: ``pyro.module`` for the networks of plain ``nn.Module``
  programs, done only outside module-local mode, where ``SVI`` needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyro
import torch


@contextmanager
def local_params() -> Iterator[None]:
    """Pyro's ``module_local_params`` setting on for the block, restored after.

    The setting is process-wide in Pyro, so a block in one thread changes it for
    every thread until it ends.
    """
    with pyro.settings.context(module_local_params=True):
        yield


def in_local_mode() -> bool:
    """Whether Pyro's parameters live in their modules (module-local mode) now."""
    return bool(pyro.settings.get("module_local_params"))


class LocalParams:
    """Mixin for a ``PyroModule``: its parameters stay in the module, in any mode.

    Built and called in module-local mode, the module keeps its ``PyroParam``\\ s as
    its own ``nn.Parameter``\\ s and still emits Pyro ``param`` messages for them,
    so ``poutine.trace``, ``Predictive`` and ``SVI`` with a ``pyro.optim`` optimizer
    work as on any Pyro program; Pyro's global param store is never written.

    Put it first among the bases: ``class MyModel(LocalParams, PyroModule)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # PyroModule gives a module its local parameter state only when it is
        # built in module-local mode.
        with local_params():
            super().__init__(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with local_params():
            return super().__call__(*args, **kwargs)


def register_module(name: str, module: torch.nn.Module) -> None:
    """``pyro.module(name, module)``, outside module-local mode only.

    Outside it (Pyro's default) the module's parameters enter the param store, so a
    plain ``SVI`` with a ``pyro.optim`` optimizer finds and trains them. In
    module-local mode, which the zoo's own fits use, the ELBO module owns them
    already, and skipping the call keeps one ``param`` message per weight out of
    every step.
    """
    if not in_local_mode():
        pyro.module(name, module)


def ensure_local_state(*modules: Any) -> None:
    """Give every ``PyroModule`` among ``modules`` and their submodules the local
    parameter state it lacks when it was built outside module-local mode (an
    autoguide a user built), so the zoo can fit it in module-local mode.
    """
    from pyro.nn import PyroModule

    for module in modules:
        if not isinstance(module, torch.nn.Module):
            continue
        for sub in module.modules():
            context = getattr(sub, "_pyro_context", None)
            if isinstance(sub, PyroModule) and not hasattr(context, "param_state"):
                context.param_state = {"params": {}, "constraints": {}}
