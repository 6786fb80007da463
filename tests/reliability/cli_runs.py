"""The command line as the reliability tests run it: in-process, with its stderr
captured, and the two small fits they damage."""

from __future__ import annotations

import contextlib
import io

from ppl_models.cli import main

DIGITS = ["fit", "vae", "--dataset", "digits", "--hidden-dim", "16", "--latent-dim",
          "2", "--batch-size", "256", "--no-criticize", "--device", "cpu"]  # fmt: skip
PPCA = ["fit", "ppca", "--num-datapoints", "100", "--steps", "20", "--ppc-samples",
        "5", "--device", "cpu"]  # fmt: skip


def run(*argv) -> tuple[int, str]:
    """Run the command line; its exit status and its stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in argv])
    return status, err.getvalue()


def assert_refused(status: int, err: str, *fragments: str) -> None:
    """Exit status 2, one line, no traceback, and each fragment in the line."""
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
