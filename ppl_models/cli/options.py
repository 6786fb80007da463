"""Command-line options made from config dataclasses (see :mod:`ppl_models.settings`).

Each field becomes ``--field-name`` (or the setting's ``flag``) with the field's
type, default, help and choices; a bool is a flag that sets it, a tuple takes one or
more values. :func:`from_namespace` turns the parsed options back into the config.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import MISSING
from typing import Any, TypeVar

from ppl_models.errors import UsageError
from ppl_models.settings import Setting, settings_of

C = TypeVar("C")


def add_options(
    parser: argparse.ArgumentParser, cls: type, *, leave_out: Iterable[str] = ()
) -> None:
    """Add an option to ``parser`` for every setting of the dataclass ``cls`` but
    those named in ``leave_out``.
    """
    left_out = set(leave_out)
    for setting in settings_of(cls):
        if setting.name not in left_out:
            parser.add_argument(
                setting.flag, dest=setting.name, help=setting.help, **_how(setting)
            )


def _how(setting: Setting) -> dict[str, Any]:
    if setting.type is bool:
        if setting.default is not False or setting.many:
            raise TypeError(f"{setting.name}: a flag's default must be False")
        return {"action": "store_true"}
    how: dict[str, Any] = {"type": _parser(setting)}
    if setting.default is MISSING:
        how["required"] = True
    else:
        # argparse gives a list for nargs="+", and shows the default in the help.
        default = setting.default
        how["default"] = list(default) if setting.many else default
    if setting.many:
        how["nargs"] = "+"
    if setting.choices is not None:
        how["choices"] = setting.choices
    if setting.metavar is not None:
        how["metavar"] = setting.metavar
    return how


def _parser(setting: Setting) -> Callable[[str], Any] | None:
    if setting.parse is None:
        # Text needs no conversion; argparse names int and float in its errors.
        return None if setting.type is str else setting.type
    parse = setting.parse

    def parse_option(text: str) -> Any:
        try:
            return parse(text)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse_option


def from_namespace(cls: type[C], args: argparse.Namespace) -> C:
    """The ``cls`` that the options :func:`add_options` added were parsed into; a
    setting left out of the parser takes its default.
    """
    values = {}
    for setting in settings_of(cls):
        if hasattr(args, setting.name):
            value = getattr(args, setting.name)
            many = setting.many and value is not None
            values[setting.name] = tuple(value) if many else value
    return cls(**values)
