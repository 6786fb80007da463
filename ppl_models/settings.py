"""Settings said once: a model's config is a dataclass whose fields are its settings.

Each field comes from :func:`setting`, which keeps the help text, the choices and
how a resumed run treats it in the field's metadata. From that one declaration the
command line makes its option (name, type, default, help), ``config.json`` holds the
field under its name (:mod:`ppl_models.run_config`), and two configs are compared
field by field (:func:`differing_fields`). A subclass may drop settings it inherits
but has no use for (:func:`dropped_of`).

>>> from dataclasses import dataclass
>>> @dataclass
... class Example:
...     steps: int = setting(100, "steps in all", resumable=True)
...     lr: float = setting(0.1, "the learning rate")
>>> [(s.flag, s.type.__name__, s.default) for s in settings_of(Example)]
[('--steps', 'int', 100), ('--lr', 'float', 0.1)]
>>> differing_fields(Example(steps=100, lr=0.1), Example(steps=300, lr=0.1))
['steps']
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, TypeVar

from ppl_models.errors import UsageError
from ppl_models.validation import (
    MAX_INT,
    MAX_SEED,
    check_choice,
    check_float_at_least,
    check_int_range,
    check_positive_float,
    check_positive_int,
    check_seed,
)

C = TypeVar("C")

#: the types a setting may have, alone, as ``X | None`` or as ``tuple[X, ...]``
SCALARS = (bool, int, float, str, Path)
_KEY = "ppl_models.setting"


def setting(
    default: Any,
    help: str,
    *,
    choices: Sequence[str] | None = None,
    resumable: bool = False,
    recorded: bool = True,
    flag: str | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    before: Any = MISSING,
    low: float | None = None,
    high: float | None = None,
) -> Any:
    """A dataclass field declaring one setting.

    :param default: the default, or ``dataclasses.MISSING`` for one that must be
        given (declare such a class with ``kw_only=True``).
    :param help: the option's help text.
    :param choices: the values allowed.
    :param resumable: whether a resumed run takes a new value (``--steps`` in all);
        every other recorded setting keeps the value in ``config.json``.
    :param recorded: whether ``config.json`` holds it; a setting of one invocation
        (where the data lives, whether to skip the plots) is taken anew every time.
    :param flag: the option's name, if not ``--`` and the field's name in kebab case.
    :param metavar: the option's placeholder in the usage line.
    :param parse: turns the option's text into the value, raising
        :class:`UsageError` with the message to show (default: the field's type).
    :param before: the value of a run whose ``config.json`` was written before the
        setting existed (by default such a run is refused).
    :param low: the least value of a number (default: 1 for an integer, above 0
        for a float: counts and scales).
    :param high: the greatest value of an integer (default:
        :data:`~ppl_models.validation.MAX_INT`).
    """
    about = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "resumable": resumable,
        "recorded": recorded,
        "flag": flag,
        "metavar": metavar,
        "parse": parse,
        "before": before,
        "low": low,
        "high": high,
    }
    return dataclasses.field(default=default, metadata={_KEY: about})


@dataclass(frozen=True)
class Setting:
    """One setting of a config class, as :func:`settings_of` reads it."""

    name: str
    #: one of :data:`SCALARS`; a tuple setting's item type
    type: type
    #: whether None is a value (``X | None``)
    optional: bool
    #: whether it is a ``tuple[type, ...]``
    many: bool
    #: ``dataclasses.MISSING`` where it must be given
    default: Any
    help: str
    choices: tuple[str, ...] | None
    resumable: bool
    recorded: bool
    flag: str
    metavar: str | None
    parse: Callable[[str], Any] | None
    #: what a ``config.json`` that lacks it means (MISSING: it is refused)
    before: Any = MISSING
    #: the least value of a number (None: 1 for an int, above 0 for a float)
    low: float | None = None
    #: the greatest value of an int (None: ``MAX_INT``)
    high: float | None = None

    def check(self, value: Any) -> Any:
        """``value`` if this setting can take it, else a :class:`UsageError` that
        names the setting, says what it may be and quotes ``value``."""
        if value is None and self.optional:
            return value
        if self.many:
            if not isinstance(value, tuple | list) or not value:
                raise UsageError(
                    f"{self.name} must be one or more {self.type.__name__} values, "
                    f"got {value!r}"
                )
            return tuple(self._check_one(item) for item in value)
        return self._check_one(value)

    def _check_one(self, value: Any) -> Any:
        if self.type is int:
            low = 1 if self.low is None else int(self.low)
            high = MAX_INT if self.high is None else int(self.high)
            if (low, high) == (1, MAX_INT):
                return check_positive_int(self.name, value)
            return check_int_range(self.name, value, low, high)
        if self.type is float:
            if self.low is None:
                return check_positive_float(self.name, value)
            return check_float_at_least(self.name, value, self.low)
        if self.type is Path and isinstance(value, str):
            value = Path(value)
        if not isinstance(value, self.type):
            raise UsageError(
                f"{self.name} must be a {self.type.__name__}, got {value!r}"
            )
        if self.choices is not None:
            check_choice(self.name, value, self.choices)
        return value


def settings_of(cls: type) -> list[Setting]:
    """The settings of the dataclass ``cls``, in field order, less those it drops.

    :raises TypeError: for a field not declared by :func:`setting`, or of a type a
        setting cannot have.
    """
    hints = typing.get_type_hints(cls)
    dropped = dropped_of(cls)
    found = []
    for field in dataclasses.fields(cls):
        if field.name in dropped:
            continue
        if _KEY not in field.metadata:
            raise TypeError(f"{cls.__name__}.{field.name} is not declared by setting()")
        about = dict(field.metadata[_KEY])
        kind, optional, many = _kind(hints[field.name], f"{cls.__name__}.{field.name}")
        flag = about.pop("flag") or "--" + field.name.replace("_", "-")
        found.append(
            Setting(field.name, kind, optional, many, field.default, flag=flag, **about)
        )
    return found


def dropped_of(cls: type) -> dict[str, Any]:
    """The settings that the config class ``cls`` inherits but drops, by name, with
    their defaults: those its ``dropped_settings`` class attribute names.

    A model whose config extends another's may have no use for some of its settings
    (the other's network options). A dropped setting keeps its field and default,
    which the code it shares reads, but :func:`settings_of` leaves it out: it has no
    option, ``config.json`` does not hold it (an older run's, at the default, is
    read as before) and :func:`check_settings` refuses another value.

    :raises TypeError: for a name that is no field of ``cls``.
    """
    defaults = {field.name: field.default for field in dataclasses.fields(cls)}
    names = getattr(cls, "dropped_settings", ())
    unknown = [name for name in names if name not in defaults]
    if unknown:
        raise TypeError(f"{cls.__name__} drops no setting {', '.join(unknown)}")
    return {name: defaults[name] for name in names}


def check_settings(config: Any, skip: Sequence[str] = ()) -> None:
    """Check every setting of the dataclass ``config`` against its declaration
    (type, choices, range): a config's ``__post_init__`` calls it, so a config from
    the command line, from ``config.json`` or from Python is checked alike.

    :param skip: settings not to check (one whose values a fit from Python may
        extend, such as the name of a user's own data).
    :raises UsageError: naming the first setting that is out of bounds, or one
        that ``config``'s class drops (:func:`dropped_of`) set to another value.
    """
    for name, default in dropped_of(type(config)).items():
        if getattr(config, name) != default:
            raise UsageError(
                f"{name} is not a setting of {type(config).__name__}: leave it out"
            )
    for s in settings_of(type(config)):
        if s.name not in skip and getattr(config, s.name) is not MISSING:
            s.check(getattr(config, s.name))


def _kind(hint: Any, where: str) -> tuple[type, bool, bool]:
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    if optional:
        (hint,) = [arg for arg in args if arg is not type(None)]
        args = typing.get_args(hint)
    many = typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is ...
    kind = args[0] if many else hint
    if kind not in SCALARS:
        raise TypeError(f"{where}: a setting cannot have type {hint}")
    return kind, optional, many


def command_line(cls: type, values: Mapping[str, Any]) -> list[str]:
    """The options that set ``values`` (setting name -> value) of config class
    ``cls``: a flag for True, nothing for False, one word per item of a tuple.
    """
    flags = {s.name: s.flag for s in settings_of(cls)}
    args: list[str] = []
    for name, value in values.items():
        if value is True:
            args.append(flags[name])
        elif isinstance(value, tuple):
            args += [flags[name], *map(str, value)]
        elif value is not False:
            args += [flags[name], str(value)]
    return args


def differing_fields(first: Any, second: Any) -> list[str]:
    """The names of the fields in which two dataclasses of one class differ."""
    if type(first) is not type(second):
        raise TypeError(f"cannot compare {type(first)} with {type(second)}")
    return [
        field.name
        for field in dataclasses.fields(first)
        if getattr(first, field.name) != getattr(second, field.name)
    ]


def common_values(config: Any, cls: type) -> dict[str, Any]:
    """``config``'s values of the fields that the dataclass ``cls`` has too: the
    keywords ``config`` gives ``cls``.
    """
    own = {field.name for field in dataclasses.fields(config)}
    return {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(cls)
        if field.name in own
    }


def seed_setting() -> Any:
    """The ``seed`` setting every model's config has."""
    return setting(
        0,
        f"seeds the data, the fit and its checks (0 to {MAX_SEED})",
        parse=parse_seed,
        low=0,
        high=MAX_SEED,
    )


def parse_seed(text: str) -> int:
    """``--seed``: an integer from 0 to 2**32 - 1.

    :raises UsageError: for anything else, quoting ``text``.
    """
    try:
        return check_seed(int(text))
    except (ValueError, UsageError):
        raise UsageError(
            f"seed must be an integer from 0 to {MAX_SEED}, got {text!r}"
        ) from None
