"""The ``ppl-models`` command line.

Every error in the user's input ends the program with exit status 2 and one line on
stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ppl_models.cli.demo import run_demo
from ppl_models.cli.fitting import add_common_fit_arguments, run_fit
from ppl_models.device import resolve_device
from ppl_models.errors import TrainingError, UsageError
from ppl_models.io.run_dir import read_config
from ppl_models.registry import get_model, list_models


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser for every subcommand, with each registered model's options."""
    parser = OneLineErrorParser(
        prog="ppl-models", description="Fit and criticise the zoo's Pyro models."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("list", help="the models and their inference methods")

    fit = commands.add_parser("fit", help="fit a model; writes a run directory")
    models = fit.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name in list_models():
        spec = get_model(name)
        model_parser = models.add_parser(name, help=spec.description)
        spec.add_fit_arguments(model_parser)
        add_common_fit_arguments(model_parser)

    criticize = commands.add_parser("criticize", help="criticise a fitted run")
    criticize.add_argument("run_dir", type=Path, metavar="DIR")
    criticize.add_argument("--device", default="auto")

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a fitted run (options depend on the model)"
    )
    evaluate.add_argument("run_dir", type=Path, metavar="DIR")
    evaluate.add_argument("--device", default="auto")

    demo = commands.add_parser("demo", help="fit every bundled model on offline data")
    demo.add_argument("--out", type=Path, required=True, metavar="DIR")
    demo.add_argument("--device", default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        return _dispatch(parser, args, extra)
    except SystemExit as exit_:  # argparse: --help, or an error already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    except UsageError as error:
        if args.debug:
            traceback.print_exc()
        # One line, whatever the message: multi-line details are joined with "; ".
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        print(f"ppl-models: error: {'; '.join(lines)}", file=sys.stderr)
        return 2
    except TrainingError as error:
        if args.debug:
            traceback.print_exc()
        print(f"ppl-models: training stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "ppl-models: interrupted; a run's checkpoint holds its last finished "
            "epoch: continue it with --resume",
            file=sys.stderr,
        )
        return 130


def _dispatch(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> int:
    if args.command == "evaluate":
        return _evaluate(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "list":
        _print_models()
    elif args.command == "fit":
        run_fit(get_model(args.model), args)
    elif args.command == "criticize":
        config = read_config(args.run_dir)
        summary = get_model(config["model"]).criticize_run(
            args.run_dir, resolve_device(args.device)
        )
        print(f"criticism written to {args.run_dir}")
        _print_numbers(summary, ("replay_cov_rel_error", "ppc"))
    elif args.command == "demo":
        run_demo(args.out, args.device)
    return 0


def _evaluate(args: argparse.Namespace, extra: list[str]) -> int:
    # Evaluation options belong to the model, known only once the run is read.
    config = read_config(args.run_dir)
    spec = get_model(config["model"])
    parser = OneLineErrorParser(prog=f"ppl-models evaluate ({spec.name})")
    spec.add_evaluate_arguments(parser)
    options = parser.parse_args(extra)
    summary = spec.evaluate_run(args.run_dir, options, resolve_device(args.device))
    print(f"evaluation of {args.run_dir} written to {args.run_dir / 'summary.json'}")
    _print_numbers(summary, tuple(vars(options)) + ("test_elbo", "test_iwae"))
    return 0


def _print_models() -> None:
    for name in list_models():
        spec = get_model(name)
        print(f"{name}: {spec.description}")
        for method, description in spec.inference_methods.items():
            print(f"  {method:<12} {description}")


def _print_numbers(summary: dict, keys: Sequence[str]) -> None:
    for key in keys:
        if key in summary:
            print(f"  {key}: {summary[key]}")
