"""The ``ppl-models`` command line."""

from ppl_models.cli.main import main

__all__ = ["main"]
