"""The ``ppl-models`` command line.

Every error in the user's input ends the program with exit status 2 and one line on
stderr; ``--debug``, anywhere on the line, shows the traceback as well.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ppl_models import __version__
from ppl_models.cli.demo import run_demo
from ppl_models.cli.export import export_run
from ppl_models.cli.fitting import add_fit_options, run_fit
from ppl_models.cli.options import OneLineErrorParser, add_options, from_namespace
from ppl_models.cli.report import summary_lines
from ppl_models.device import resolve_device
from ppl_models.errors import TrainingError, UsageError, WriteError
from ppl_models.inference.memory import is_out_of_memory
from ppl_models.io.run_dir import CHECKPOINT, read_config, read_summary, writing_run
from ppl_models.registry import ModelSpec, get_model, list_models
from ppl_models.seeding import caller_rng_kept
from ppl_models.threads import add_threads_option, command_threads

DEBUG = "--debug"


def build_parser() -> argparse.ArgumentParser:
    """The parser for every subcommand, with each registered model's options."""
    parser = OneLineErrorParser(
        prog="ppl-models", description="Fit and criticise the zoo's Pyro models."
    )
    parser.add_argument(
        DEBUG, action="store_true", help="show tracebacks (anywhere on the line)"
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        required=True,
        parser_class=OneLineErrorParser,
    )

    commands.add_parser("list", help="the models and their inference methods")

    fit = commands.add_parser("fit", help="fit a model; writes a run directory")
    models = fit.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name in list_models():
        spec = get_model(name)
        model_parser = models.add_parser(
            name, help=spec.description, description=spec.description
        )
        add_fit_options(model_parser, spec)

    criticize = commands.add_parser("criticize", help="criticise a fitted run")
    criticize.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory")
    criticize.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_threads_option(criticize)

    # Evaluation options belong to the model, known only once DIR is read: this
    # parser takes what every model shares, and _evaluate parses the rest.
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a fitted run (options depend on the model)",
        add_help=False,
    )
    evaluate.add_argument(
        "run_dir", type=Path, metavar="DIR", nargs="?", help="a run directory"
    )
    evaluate.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_threads_option(evaluate)
    evaluate.add_argument(
        "-h", "--help", action="store_true", dest="show_help", help="show the options"
    )

    export = commands.add_parser(
        "export", help="write a run's fit as ArviZ InferenceData (NetCDF)"
    )
    export.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory")
    export.add_argument(
        "--out", type=Path, metavar="FILE", help="default: DIR/inference_data.nc"
    )
    export.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="draws from the guide (default: the model's)",
    )
    export.add_argument("--device", default="auto", help=DEVICE_HELP)

    demo = commands.add_parser("demo", help="fit every bundled model on offline data")
    demo.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where the runs go"
    )
    demo.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_threads_option(demo)
    return parser


DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug may come after the subcommand too; the parser sees it first.
    debug = DEBUG in argv
    if debug:
        argv = [DEBUG] + [arg for arg in argv if arg != DEBUG]
    parser = build_parser()
    args = argparse.Namespace()
    try:
        args, extra = parser.parse_known_args(argv)
        with _progress_lines():
            return _dispatch(parser, args, extra)
    except SystemExit as exit_:  # argparse: --help, or an error already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    except UsageError as error:
        if debug:
            traceback.print_exc()
        # One line, whatever the message: multi-line details are joined with "; ".
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        print(f"ppl-models: error: {'; '.join(lines)}", file=sys.stderr)
        return 2
    except WriteError as error:
        # Any command's, not only a fit's: evaluate and criticize write too.
        if debug:
            traceback.print_exc()
        print(f"ppl-models: error: {error}", file=sys.stderr)
        return 1
    except TrainingError as error:
        if debug:
            traceback.print_exc()
        print(f"ppl-models: training stopped: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        # Out of memory where no step of the zoo expected it (building a network
        # too large for the machine): one line, as everywhere else.
        if debug or not is_out_of_memory(error):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"ppl-models: out of memory: {first or type(error).__name__}; try "
            "smaller networks or batches",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        # Only a fit of a model that can resume, with a checkpoint written, has
        # something to continue.
        can_resume = getattr(args, "resume", None) is not None
        hint = (
            f": the checkpoint in {args.out} holds the last finished epoch or step; "
            "continue with --resume"
            if can_resume and (args.out / CHECKPOINT).is_file()
            else ""
        )
        print(f"ppl-models: interrupted{hint}", file=sys.stderr)
        return 130


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextmanager
def _progress_lines() -> Iterator[None]:
    # The library logs progress at INFO where no bar is shown; a command shows it.
    logger = logging.getLogger("ppl_models")
    handler, level = _StderrHandler(), logger.level
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _dispatch(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> int:
    # Run in a process of its own or called from Python, a command leaves the
    # caller's random generators as they were.
    # --threads holds for the whole command, and torch gets its count back after.
    with caller_rng_kept(), command_threads(getattr(args, "threads", None)):
        return _run_command(parser, args, extra)


def _run_command(
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
        spec = get_model(read_config(args.run_dir)["model"])
        device = resolve_device(args.device)
        with writing_run(args.run_dir):
            read_summary(args.run_dir)  # a damaged one is refused before the work
            summary = spec.criticize_run(args.run_dir, device)
        print(f"criticism written to {args.run_dir}")
        _print_numbers(summary, spec.criticism_keys)
    elif args.command == "export":
        device = resolve_device(args.device)
        with writing_run(args.run_dir):
            path = export_run(args.run_dir, args.out, args.samples, device)
        print(f"inference data written to {path}")
    elif args.command == "demo":
        run_demo(args.out, args.device)
    return 0


def _evaluate(args: argparse.Namespace, extra: list[str]) -> int:
    spec = get_model(read_config(args.run_dir)["model"]) if args.run_dir else None
    parser = evaluate_parser(spec)
    if args.show_help:
        parser.print_help()
        return 0
    if spec is None:
        parser.error("the following arguments are required: DIR")
    argv = [str(args.run_dir), "--device", args.device, *extra]
    parsed = parser.parse_args(argv)
    options = (
        from_namespace(spec.evaluate_class, parsed) if spec.evaluate_class else None
    )
    device = resolve_device(parsed.device)
    with writing_run(parsed.run_dir):
        read_summary(parsed.run_dir)  # a damaged one is refused before the work
        summary = spec.evaluate_run(parsed.run_dir, options, device)
    print(f"evaluation of {args.run_dir} written to {args.run_dir / 'summary.json'}")
    own = [key for key in vars(parsed) if key not in ("run_dir", "device", "threads")]
    _print_numbers(summary, own + list(spec.evaluation_keys))
    return 0


def evaluate_parser(spec: type[ModelSpec] | None) -> argparse.ArgumentParser:
    """``ppl-models evaluate``'s parser, with ``spec``'s own options if given."""
    parser = OneLineErrorParser(
        prog="ppl-models evaluate",
        description="Evaluate the fit in DIR and add the numbers to its summary. "
        + (
            f"The options below after --device are those of a {spec.name} run."
            if spec
            else "Each model has its own options: 'ppl-models evaluate DIR --help' "
            "lists those of the run in DIR."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory")
    # Taken by the command's parser; listed here for the help, before --device.
    add_threads_option(parser)
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    if spec is not None and spec.evaluate_class is not None:
        add_options(parser, spec.evaluate_class)
    return parser


def _print_models() -> None:
    for name in list_models():
        spec = get_model(name)
        print(f"{name}: {spec.description}")
        for method, description in spec.inference_methods.items():
            print(f"  {method:<12} {description}")


def _print_numbers(summary: dict, keys: Sequence[str]) -> None:
    for line in summary_lines(summary, keys):
        print(line)
