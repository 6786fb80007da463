"""A run's settings in its ``config.json``: written from a config dataclass
(:mod:`ppl_models.settings`), read back and checked, and what a resumed run goes on
with.

>>> from dataclasses import dataclass
>>> from ppl_models.settings import setting
>>> @dataclass
... class Example:
...     steps: int = setting(100, "steps in all", resumable=True)
...     lr: float = setting(0.1, "the learning rate")
>>> resumed(Example(steps=100, lr=0.1), Example(steps=300, lr=9.0))
Example(steps=300, lr=0.1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import MISSING
from pathlib import Path
from typing import Any, TypeVar

from ppl_models.errors import CheckpointError, UsageError
from ppl_models.io.run_dir import CONFIG, read_config, write_config
from ppl_models.settings import Setting, dropped_of, settings_of

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """The recorded settings of ``config`` as JSON values: its ``asdict``, with
    paths as strings and tuples as lists. :func:`config_from_dict` inverts it.
    """
    values = dataclasses.asdict(config)
    return {
        s.name: _to_json(values[s.name])
        for s in settings_of(type(config))
        if s.recorded
    }


def _to_json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def config_from_dict(cls: type[C], values: Mapping[str, Any], source: Any) -> C:
    """A ``cls`` from :func:`config_to_dict`'s output, e.g. a run's ``config.json``.

    A missing resumable setting takes its default: runs written before such a
    setting was recorded lack it, and a resumed run takes it anew anyway. So does
    a setting that is not recorded. A missing setting declared with ``before``
    takes that value: what runs before it did. A setting that ``cls`` drops
    (:func:`~ppl_models.settings.dropped_of`) is passed over at its default, as
    runs written before it was dropped hold it; at another value it is unknown.

    :param source: where the values come from, for the messages.
    :raises CheckpointError: naming unknown or missing settings, or a value of the
        wrong type.
    """
    dropped = dropped_of(cls)
    values = {
        k: v
        for k, v in values.items()
        if not (k in dropped and v == _to_json(dropped[k]))
    }
    settings = {s.name: s for s in settings_of(cls) if s.recorded}
    unknown = [key for key in values if key not in settings]
    if unknown:
        raise CheckpointError(f"{source} holds unknown settings: {', '.join(unknown)}")
    absent = [name for name in settings if name not in values]
    older = {
        name: settings[name].before
        for name in absent
        if settings[name].before is not MISSING
    }
    missing = [
        name
        for name in absent
        if name not in older
        and not (settings[name].resumable and settings[name].default is not MISSING)
    ]
    if missing:
        raise CheckpointError(f"{source} lacks the settings {', '.join(missing)}")
    given = {k: _from_json(settings[k], v, source) for k, v in values.items()}
    return cls(**older, **given)


def _from_json(s: Setting, value: Any, source: Any) -> Any:
    if value is None and s.optional:
        return None
    items = value if s.many and isinstance(value, list) else [value]
    if (s.many and not isinstance(value, list)) or not all(
        _is_a(s.type, item) for item in items
    ):
        raise CheckpointError(f"{source}: {s.name} cannot be {value!r}")
    items = [s.type(item) if s.type in (Path, float) else item for item in items]
    value = tuple(items) if s.many else items[0]
    try:
        return s.check(value)
    except UsageError as error:
        raise CheckpointError(f"{source}: {error}") from None


def _is_a(kind: type, value: Any) -> bool:
    if kind is Path:
        return isinstance(value, str)
    if kind in (int, float) and isinstance(value, bool):
        return False
    # JSON writes 1.0 as 1.0, but a person editing the file may write 1.
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


def resumed(saved: C, given: C) -> C:
    """The config a resumed run goes on with: ``saved``'s settings, but ``given``'s
    resumable ones and those ``config.json`` does not record.
    """
    new = {
        s.name: getattr(given, s.name)
        for s in settings_of(type(saved))
        if s.resumable or not s.recorded
    }
    return dataclasses.replace(saved, **new)


def read_run_config(cls: type[C], run_dir: str | Path) -> C:
    """The config in ``run_dir``'s ``config.json`` (besides the model's name).

    :raises CheckpointError: if there is none, or it is not a config of ``cls``.
    """
    values = {k: v for k, v in read_config(run_dir).items() if k != "model"}
    return config_from_dict(cls, values, Path(run_dir) / CONFIG)


def check_config_unedited(cls: type, run_dir: str | Path, record: dict) -> None:
    """Refuse a run whose ``config.json`` was edited after its checkpoint was
    written: one command would obey the edit (a new binarization for criticism)
    and another ignore it (the optimizer's learning rate on resume). A setting a
    resume takes anew may differ; checkpoints from before ``settings`` was kept
    are taken as they are.

    :param record: the checkpoint record, with the ``settings`` it was saved with.
    :raises CheckpointError: naming each setting that differs and both values.
    """
    saved = record.get("settings")
    if not isinstance(saved, dict):
        return
    now = read_config(run_dir)
    fixed = [s.name for s in settings_of(cls) if s.recorded and not s.resumable]
    changed = [
        f"{name} is {now[name]!r} there, {saved[name]!r} in the checkpoint"
        for name in fixed
        # a setting missing from either is config_from_dict's to judge
        if name in saved and name in now and now[name] != saved[name]
    ]
    if changed:
        raise CheckpointError(
            f"{Path(run_dir) / CONFIG} was edited after its checkpoint was written: "
            f"{'; '.join(changed)}. Put the value back (a run's settings are fixed "
            "once it has a checkpoint), or fit anew with --overwrite"
        )


def write_run_config(run_dir: str | Path, model: str, config: Any) -> None:
    """Write ``config.json``: the model's name and the recorded settings."""
    write_config(run_dir, {"model": model, **config_to_dict(config)})
