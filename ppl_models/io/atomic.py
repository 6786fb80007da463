"""Files that are either written whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: the temporary files' names are ``.NAME.XXXXXXXX.tmp``
TEMPORARY_SUFFIX = ".tmp"


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over
    ``path``. On any error the temporary file is removed and ``path`` is untouched,
    so a crash or a kill mid-write leaves the previous version readable.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent
    )
    try:
        set_usual_mode(fd)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def set_usual_mode(fd: int) -> None:
    """Give the file open as ``fd`` the mode a plain ``open`` would (0o666 less the
    umask); ``mkstemp`` makes it 0o600, readable by its owner alone."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~_umask())


def _umask() -> int:
    """The process's umask: read from /proc where Linux gives it, else by setting
    and restoring it (which another thread could observe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | Path, write: Callable[[IO], Any], mode: str = "wb"
) -> None:
    """Call ``write(handle)`` on a temporary file and move it to ``path`` atomically."""
    with atomic_open(path, mode) as handle:
        write(handle)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON, atomically.

    :raises ValueError: if ``obj`` holds a NaN or an infinity, which strict JSON
        cannot hold (write :func:`ppl_models.io.run_dir.write_summary` for numbers
        that may be non-finite).
    """
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    with atomic_open(path, "w") as handle:
        handle.write(text)


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    with open(path) as handle:
        return json.load(handle)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some file systems refuse, which is harmless.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
