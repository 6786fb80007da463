"""ppl_models: a zoo of probabilistic models written as Pyro programs.

>>> import ppl_models
>>> "ppca" in ppl_models.list_models()
True
"""

from ppl_models.device import resolve_device
from ppl_models.errors import CheckpointError, DataError, DeviceError, UsageError
from ppl_models.fits import Fit, load_fit
from ppl_models.registry import ModelSpec, get_model, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataError",
    "DeviceError",
    "Fit",
    "ModelSpec",
    "UsageError",
    "get_model",
    "list_models",
    "load_fit",
    "register_model",
    "resolve_device",
]
