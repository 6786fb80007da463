"""``ppl-models demo``: every registered model's demo runs, on offline data."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppl_models.cli.fitting import add_fit_options, headline, run_fit
from ppl_models.io.run_dir import prepare_run_dir, write_summary, writing_run
from ppl_models.registry import get_model, list_models
from ppl_models.run_config import read_run_config


def run_demo(out: Path, device: str = "auto") -> dict[str, dict]:
    """Fit each model's demo runs into ``out/<run name>``; write ``out/summary.json``
    with each run's headline numbers, and return it.
    """
    with writing_run(prepare_run_dir(out)) as out:
        return _run_demos(out, device)


def _run_demos(out: Path, device: str) -> dict[str, dict]:
    overview: dict[str, dict] = {}
    for name in list_models():
        spec = get_model(name)
        for run_name, fit_args in spec.demo_runs().items():
            parser = argparse.ArgumentParser(prog=f"demo {run_name}")
            add_fit_options(parser, spec)
            args = parser.parse_args(
                [*fit_args, "--device", device, "--out", str(out / run_name)]
            )
            print(f"demo: {run_name}")
            summary = run_fit(spec, args)
            overview[run_name] = headline(summary, spec.headline_keys)
            notes = spec.figure_notes(read_run_config(spec.config_class, args.out))
            for figure in sorted(p.name for p in args.out.glob("*.png")):
                if figure in notes:
                    print(f"  {figure}: {notes[figure]}")
    write_summary(out, overview)
    print(f"demo finished: plots in {out}/*/, overview in {out / 'summary.json'}")
    return overview
