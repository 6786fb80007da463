"""The zoo's models: one subpackage each, registered on import.

Every subpackage here is imported so that its ``@register_model`` runs; a new model
needs no line in this file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
