"""Settings said once: what a field declared by ``setting`` tells, config.json's round
trip through ``asdict``, the errors of a config.json that is not a config, the fields
two configs differ in, which settings a resumed run takes anew, and the settings a
subclass drops."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from ppl_models.cli.options import add_options
from ppl_models.errors import CheckpointError, UsageError
from ppl_models.io.run_dir import write_config
from ppl_models.run_config import (
    config_from_dict,
    config_to_dict,
    read_run_config,
    resumed,
    write_run_config,
)
from ppl_models.settings import (
    check_settings,
    common_values,
    differing_fields,
    dropped_of,
    parse_seed,
    seed_setting,
    setting,
    settings_of,
)
from ppl_models.validation import MAX_SEED


@dataclass
class Toy:
    """A config with a setting of every kind."""

    method: str = setting("a", "which method", choices=("a", "b"))
    data: Path | None = setting(None, "a file")
    widths: tuple[int, ...] = setting((4, 2), "layer widths", flag="--width")
    scale: float = setting(0.5, "a scale")
    limit: int | None = setting(None, "at most this many")
    steps: int = setting(10, "steps in all", resumable=True)
    quiet: bool = setting(False, "say less", recorded=False)
    seed: int = seed_setting()


def test_a_setting_gives_the_type_default_help_choices_and_flag():
    found = {s.name: s for s in settings_of(Toy)}
    assert list(found) == [f.name for f in dataclasses.fields(Toy)]
    method, data, widths = found["method"], found["data"], found["widths"]
    assert (method.type, method.optional, method.many) == (str, False, False)
    assert (method.default, method.help, method.choices) == ("a", "which method",
                                                             ("a", "b"))  # fmt: skip
    assert method.flag == "--method" and found["seed"].flag == "--seed"
    assert (data.type, data.optional, data.default) == (Path, True, None)
    assert (widths.type, widths.many, widths.flag) == (int, True, "--width")
    assert (found["scale"].type, found["limit"].type) == (float, int)
    assert found["limit"].optional and not found["scale"].optional
    assert found["steps"].resumable and not found["scale"].resumable
    assert not found["quiet"].recorded and found["steps"].recorded
    assert found["seed"].parse is parse_seed
    assert (found["seed"].default, found["seed"].help) == (
        0, f"seeds the data, the fit and its checks (0 to {MAX_SEED})"
    )  # fmt: skip


def test_a_flag_is_the_fields_name_in_kebab_case_and_types_may_combine():
    @dataclass
    class Snake:
        max_steps: int = setting(1, "at most")
        sizes: tuple[int, ...] | None = setting(None, "optional widths")

    max_steps, sizes = settings_of(Snake)
    assert max_steps.flag == "--max-steps"
    assert (sizes.type, sizes.optional, sizes.many) == (int, True, True)


def test_a_field_without_a_setting_or_of_another_type_is_refused():
    @dataclass
    class Bare:
        lr: float = 0.1

    @dataclass
    class Listed:
        sizes: list[int] = setting(None, "sizes")

    with pytest.raises(TypeError, match=r"Bare.lr is not declared by setting\(\)"):
        settings_of(Bare)
    with pytest.raises(TypeError, match="Listed.sizes: a setting cannot have type"):
        settings_of(Listed)

    # Neither a union of two kinds nor a tuple of fixed length is a setting.
    @dataclass
    class Either:
        size: int | str = setting(1, "a size or a name")

    @dataclass
    class Pair:
        shape: tuple[int, int] = setting((1, 2), "height and width")

    for cls, hint in ((Either, "int | str"), (Pair, "tuple[int, int]")):
        with pytest.raises(TypeError) as error:
            settings_of(cls)
        assert str(error.value).endswith(f": a setting cannot have type {hint}")


def test_config_json_is_the_asdict_of_the_recorded_settings_and_reads_back():
    config = Toy(method="b", data=Path("x/y.npy"), widths=(8,), limit=3, quiet=True)
    values = config_to_dict(config)
    recorded = {k: v for k, v in dataclasses.asdict(config).items() if k != "quiet"}
    assert values == {**recorded, "data": "x/y.npy", "widths": [8]}
    assert list(values) == [k for k in recorded]
    back = config_from_dict(Toy, json.loads(json.dumps(values)), "config.json")
    assert back == dataclasses.replace(config, quiet=False)  # not recorded
    assert isinstance(back.data, Path) and back.widths == (8,)


def test_a_run_directorys_config_names_its_model(tmp_path):
    write_run_config(tmp_path, "toy", Toy(steps=3))
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "toy"
    assert read_run_config(Toy, tmp_path) == Toy(steps=3)


def test_unknown_and_missing_settings_are_named(tmp_path):
    values = config_to_dict(Toy())
    write_config(tmp_path, {"model": "toy", **values, "depth": 3, "quiet": True})
    with pytest.raises(CheckpointError) as error:
        read_run_config(Toy, tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'config.json'} holds unknown settings: depth, quiet"
    )
    partial = {k: v for k, v in values.items() if k not in ("scale", "seed")}
    with pytest.raises(CheckpointError) as error:
        config_from_dict(Toy, partial, "run/config.json")
    assert str(error.value) == "run/config.json lacks the settings scale, seed"


def test_a_missing_resumable_setting_takes_its_default():
    # Runs written before a resumable setting was recorded lack it.
    values = {k: v for k, v in config_to_dict(Toy(steps=7)).items() if k != "steps"}
    assert config_from_dict(Toy, values, "config.json") == Toy()


@dataclass
class Grown(Toy):
    """Toy with a setting added later: older runs behaved as ``mode="old"``."""

    mode: str = setting("new", "how", choices=("old", "new"), before="old")


def test_a_setting_added_later_reads_an_older_run_as_it_behaved():
    values = config_to_dict(Toy(scale=0.25))
    assert config_from_dict(Grown, values, "config.json") == Grown(
        scale=0.25, mode="old"
    )
    recorded = config_to_dict(Grown(mode="new"))
    assert config_from_dict(Grown, recorded, "config.json").mode == "new"
    # Only such a setting: another one missing is still refused by name.
    del values["scale"]
    with pytest.raises(CheckpointError, match="lacks the settings scale$"):
        config_from_dict(Grown, values, "config.json")


@pytest.mark.parametrize("key,value", [
    ("scale", "0.5"), ("scale", True), ("limit", 2.5), ("widths", 4),
    ("widths", [4, "2"]), ("data", 3), ("method", None), ("seed", None),
    ("limit", [3]),
])  # fmt: skip
def test_a_value_of_the_wrong_type_is_named(key, value):
    values = {**config_to_dict(Toy()), key: value}
    with pytest.raises(CheckpointError) as error:
        config_from_dict(Toy, values, "config.json")
    assert str(error.value) == f"config.json: {key} cannot be {value!r}"


def test_a_whole_number_is_a_float_setting():
    values = {**config_to_dict(Toy()), "scale": 2}
    scale = config_from_dict(Toy, values, "config.json").scale
    assert scale == 2.0 and isinstance(scale, float)


def test_differing_fields_are_named_in_field_order():
    assert differing_fields(Toy(), Toy()) == []
    changed = Toy(seed=3, method="b", widths=(1,))
    assert differing_fields(Toy(), changed) == ["method", "widths", "seed"]
    with pytest.raises(TypeError) as error:
        differing_fields(Toy(), object())
    assert str(error.value) == f"cannot compare {Toy} with {object}"


def test_a_resumed_run_takes_only_resumable_and_unrecorded_settings_anew():
    saved = Toy(method="b", steps=10, seed=4, quiet=False)
    given = Toy(method="a", steps=30, seed=9, quiet=True, scale=2.0)
    assert resumed(saved, given) == Toy(method="b", steps=30, seed=4, quiet=True)


def test_common_values_are_the_keywords_a_config_gives_another_class():
    @dataclass
    class Training:
        steps: int = 1
        seed: int = 0
        momentum: float = 0.9

    assert common_values(Toy(steps=5, seed=2), Training) == {"steps": 5, "seed": 2}


@pytest.mark.parametrize("text", ["-1", "1.5", "ten", str(2**32)])
def test_a_seed_is_an_integer_in_range(text):
    assert parse_seed("0") == 0 and parse_seed(str(2**32 - 1)) == 2**32 - 1
    with pytest.raises(UsageError) as error:
        parse_seed(text)
    assert str(error.value) == (
        f"seed must be an integer from 0 to 4294967295, got {text!r}"
    )


@dataclass
class Narrowed(Toy):
    """Toy without its limit and its data file, which it has no use for."""

    dropped_settings = ("limit", "data")


def test_a_dropped_setting_has_no_option_and_config_json_lacks_it():
    kept = [s.name for s in settings_of(Toy) if s.name not in ("limit", "data")]
    assert [s.name for s in settings_of(Narrowed)] == kept
    assert dropped_of(Narrowed) == {"limit": None, "data": None} and not dropped_of(Toy)
    parser = argparse.ArgumentParser()
    add_options(parser, Narrowed)
    assert "--limit" not in parser.format_help() and "--steps" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--limit", "3"])
    values = config_to_dict(Narrowed(steps=3))
    assert "limit" not in values and "data" not in values
    assert config_from_dict(Narrowed, values, "config.json") == Narrowed(steps=3)


def test_an_older_config_json_holding_a_dropped_setting_reads_back_at_its_default():
    older = config_to_dict(Toy(steps=3))
    assert config_from_dict(Narrowed, older, "config.json") == Narrowed(steps=3)
    with pytest.raises(CheckpointError) as error:
        config_from_dict(Narrowed, {**older, "limit": 3}, "config.json")
    assert str(error.value) == "config.json holds unknown settings: limit"


def test_a_dropped_setting_set_from_python_is_refused_by_name():
    check_settings(Narrowed())
    with pytest.raises(UsageError) as error:
        check_settings(Narrowed(limit=3))
    assert str(error.value) == "limit is not a setting of Narrowed: leave it out"

    @dataclass
    class Misspelt(Toy):
        dropped_settings = ("limits",)

    with pytest.raises(TypeError, match="Misspelt drops no setting limits$"):
        settings_of(Misspelt)
