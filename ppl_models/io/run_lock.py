"""One writer per run directory.

Every command that writes a run directory holds its lock. The lock is an operating
system file lock (through ``filelock``), so the kernel drops it when its holder exits
or is killed: a crashed run never blocks the next one. Beside it the holder leaves a
note naming itself, so that a refused writer can say who holds the directory.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ppl_models.errors import UsageError, WriteError
from ppl_models.io.atomic import write_json

LOCK = ".lock"
HOLDER = ".lock-holder.json"


@contextmanager
def run_dir_lock(run_dir: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the body; ``run_dir`` must exist.

    :param command: what the holder is doing, for the refusal message (default: this
        process's command line).
    :raises UsageError: at once, if another process holds the lock, naming it.
    """
    run_dir = Path(run_dir)
    lock = FileLock(run_dir / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = describe_holder(run_dir)
        raise UsageError(
            f"{run_dir} is being written by another process ({holder}): wait for it "
            "to finish, or use another directory"
        ) from None
    except OSError as error:
        raise _cannot_write(run_dir, error) from None
    try:
        try:
            write_json(
                run_dir / HOLDER,
                {
                    "pid": os.getpid(),
                    "command": command or " ".join(sys.argv),
                    "since": datetime.datetime.now().isoformat(timespec="seconds"),
                },
            )
        except (OSError, WriteError) as error:
            raise _cannot_write(run_dir, error) from None
        yield run_dir
    finally:
        (run_dir / HOLDER).unlink(missing_ok=True)
        lock.release()


def _cannot_write(run_dir: Path, error: Exception) -> UsageError:
    # Taken before any work: a read-only or full folder is refused at once, not
    # after an evaluation has run for minutes.
    reason = getattr(error, "strerror", None) or str(error)
    return UsageError(
        f"cannot write to {run_dir} ({reason}): the command writes its results "
        "there; make it writable, or copy the run to a folder that is"
    )


def describe_holder(run_dir: str | Path) -> str:
    """Who holds ``run_dir``'s lock, as far as its note says."""
    try:
        with open(Path(run_dir) / HOLDER) as handle:
            holder = json.load(handle)
        return f"pid {holder['pid']}, {holder['command']!r}, since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        # The holder has taken the lock but not yet written its note.
        return "a process that has just started"
