"""Command-line options made from config dataclasses (see :mod:`ppl_models.settings`).

Each field becomes ``--field-name`` (or the setting's ``flag``) with the field's
type, default, help and choices; a bool is a flag that sets it, a tuple takes one or
more values. :func:`from_namespace` turns the parsed options back into the config.
:class:`OneLineErrorParser` is the parser every command uses: its errors are one
line, and its help shows each default.
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
        return {"action": _GivenFlag, "nargs": 0, "default": False}
    how: dict[str, Any] = {"type": _parser(setting), "action": _Given}
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


#: the namespace attribute listing the settings given on the command line
GIVEN = "given_settings"


class _Given(argparse.Action):
    """Stores the value and notes that the option was given, not defaulted: a
    resumed run must know which of its settings the user asked to change."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, GIVEN, getattr(namespace, GIVEN, set()) | {self.dest})


class _GivenFlag(_Given):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, True, option_string)


def given_settings(args: argparse.Namespace) -> set[str]:
    """The names of the settings whose options were on the command line."""
    return set(getattr(args, GIVEN, set()))


def _parser(setting: Setting) -> Callable[[str], Any]:
    convert = setting.parse
    if convert is None:
        # int("1.5") and float("x") fail with argparse naming the type; a value of
        # the right type is then checked against the setting's range.
        kind = setting.type

        def convert(text: str) -> Any:
            if kind is str:
                return text  # argparse checks the choices, naming them
            value = kind(text)
            # argparse converts each word of a tuple setting on its own
            return setting.check((value,))[0] if setting.many else setting.check(value)

    def parse_option(text: str) -> Any:
        try:
            return convert(text)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    # argparse names the type in "invalid int value: 'x'"
    parse_option.__name__ = setting.type.__name__
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


class HelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and "%(default)" not in text and "default" not in text:
            text += " (default: %(default)s)"
        return text


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not a usage block."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse echoes some words as typed ("unrecognized arguments: ..."): a
        # control character in them would break the one line.
        self.exit(2, f"{self.prog}: error: {printable(message)}\n")


def printable(text: str) -> str:
    """``text`` with each non-printable character (a newline, a carriage return)
    written as its escape, so that it shows on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
