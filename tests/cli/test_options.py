"""Options made from config dataclasses: each field's option (name, type, default,
help, choices, nargs, flags), its errors, and the parsed options back as a config."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass
from pathlib import Path

import pytest

from ppl_models.cli.options import (
    HelpFormatter,
    OneLineErrorParser,
    add_options,
    from_namespace,
)
from ppl_models.settings import seed_setting, setting


@dataclass(kw_only=True)
class Toy:
    method: str = setting("a", "which method", choices=("a", "b"))
    data: Path | None = setting(None, "a file")
    widths: tuple[int, ...] = setting((4, 2), "layer widths", flag="--width")
    scale: float = setting(0.5, "a scale")
    limit: int | None = setting(None, "at most this many")
    quiet: bool = setting(False, "say less", recorded=False)
    out: Path = setting(MISSING, "where it goes", metavar="DIR")
    seed: int = seed_setting()


def parser_for(cls=Toy, **kwargs) -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="toy")
    add_options(parser, cls, **kwargs)
    return parser


def actions(parser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings}  # noqa: SLF001


def test_each_field_gives_an_option_with_its_type_default_help_and_choices():
    found = actions(parser_for())
    assert list(found) == ["help", "method", "data", "widths", "scale", "limit",
                           "quiet", "out", "seed"]  # fmt: skip
    method = found["method"]
    assert (method.option_strings, method.default, method.help) == (
        ["--method"], "a", "which method"
    )  # fmt: skip
    assert method.type("b") == "b"  # text is taken as it is
    assert method.choices == ("a", "b")
    assert (found["data"].type("d.npy"), found["data"].default) == (Path("d.npy"), None)
    assert found["scale"].type("0.5") == 0.5 and found["limit"].type("3") == 3
    assert type(found["limit"].type("3")) is int
    widths = found["widths"]
    assert (widths.option_strings, widths.nargs, widths.type("4")) == (
        ["--width"],
        "+",
        4,
    )
    # a list, as argparse gives for nargs="+", so the help shows what a user types
    assert widths.default == [4, 2]
    assert found["quiet"].nargs == 0 and found["quiet"].default is False
    out = found["out"]
    assert (out.required, out.metavar, out.type("r")) == (True, "DIR", Path("r"))
    assert not found["scale"].required


def test_the_help_shows_each_default():
    text = " ".join(parser_for().format_help().split())
    for shown in ("which method (default: a)", "layer widths (default: [4, 2])",
                  "a scale (default: 0.5)", "--out DIR where it goes",
                  "--width WIDTHS [WIDTHS ...]"):  # fmt: skip
        assert shown in text
    assert "at most this many (default" not in text
    assert HelpFormatter is OneLineErrorParser(prog="x").formatter_class


def test_options_are_parsed_back_into_the_config():
    args = parser_for().parse_args(
        ["--method", "b", "--data", "d.npy", "--width", "8", "16", "--scale", "2",
         "--limit", "3", "--quiet", "--out", "run", "--seed", "7"]
    )  # fmt: skip
    config = from_namespace(Toy, args)
    assert config == Toy(method="b", data=Path("d.npy"), widths=(8, 16), scale=2.0,
                         limit=3, quiet=True, out=Path("run"), seed=7)  # fmt: skip
    defaults = from_namespace(Toy, parser_for().parse_args(["--out", "run"]))
    assert defaults == Toy(out=Path("run"))
    assert defaults.widths == (4, 2)


def test_an_option_left_out_takes_the_fields_default():
    parser = parser_for(leave_out=["quiet", "seed"])
    assert "quiet" not in actions(parser) and "seed" not in actions(parser)
    args = parser.parse_args(["--out", "run"])
    assert from_namespace(Toy, args) == Toy(out=Path("run"))


@pytest.mark.parametrize("argv,message", [
    (["--method", "c"], "argument --method: invalid choice: 'c'"),
    (["--scale", "big"], "argument --scale: invalid float value: 'big'"),
    (["--width"], "argument --width: expected at least one argument"),
    (["--seed", "-1"], "argument --seed: seed must be an integer from 0 to "
                       "4294967295, got '-1'"),
    ([], "the following arguments are required: --out"),
])  # fmt: skip
def test_bad_options_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parser_for().parse_args(["--out", "run", *argv] if argv else [])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"toy: error: {message}") and err.count("\n") == 1


def test_a_flag_must_default_to_off():
    @dataclass
    class On:
        loud: bool = setting(True, "say more")

    with pytest.raises(TypeError, match="loud: a flag's default must be False"):
        parser_for(On)
