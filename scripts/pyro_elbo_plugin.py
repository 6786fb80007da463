"""A pytest plugin that runs Pyro's own tests with the zoo imported.

Loaded with ``-p pyro_elbo_plugin`` by ``scripts/pyro_tests.py``. It imports the zoo
and every registered model first, as a user's program would; with
``PPL_MODELS_ELBOS=zoo`` it also puts the zoo's device-side ELBOs in the place of
Pyro's ``Trace_ELBO`` and ``TraceMeanField_ELBO`` before any test module imports
them, so Pyro's tests check the zoo's classes.
"""

from __future__ import annotations

import os

import pyro.infer
import pyro.infer.trace_elbo
import pyro.infer.trace_mean_field_elbo

import ppl_models
from ppl_models.inference.elbo import DeviceTrace_ELBO, DeviceTraceMeanField_ELBO

for _name in ppl_models.list_models():
    ppl_models.get_model(_name)

if os.environ.get("PPL_MODELS_ELBOS") == "zoo":
    pyro.infer.Trace_ELBO = DeviceTrace_ELBO
    pyro.infer.trace_elbo.Trace_ELBO = DeviceTrace_ELBO
    pyro.infer.TraceMeanField_ELBO = DeviceTraceMeanField_ELBO
    pyro.infer.trace_mean_field_elbo.TraceMeanField_ELBO = DeviceTraceMeanField_ELBO


def pytest_collection_finish(session) -> None:
    """In the zoo run, refuse a test module that still holds one of Pyro's classes:
    it imported them before this plugin replaced them, and would test Pyro's.
    """
    zoo = os.environ.get("PPL_MODELS_ELBOS") == "zoo"
    modules = {item.module for item in session.items if hasattr(item, "module")}
    for module in modules:
        for name in ("Trace_ELBO", "TraceMeanField_ELBO"):
            held = getattr(module, name, None)
            if zoo and held is not None and not held.__module__.startswith("ppl_"):
                raise RuntimeError(f"{module.__name__}.{name} is still Pyro's class")
