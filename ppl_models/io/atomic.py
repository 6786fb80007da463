"""Files that are either written whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ppl_models.errors import WriteError

#: the temporary files' names are ``.NAME.XXXXXXXX.tmp``
TEMPORARY_SUFFIX = ".tmp"

#: the failures of a write that are the file system's, not the program's, by errno
WRITE_FAILURES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (over the file system's or the process's size limit)",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
}


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over
    ``path``. On any error the temporary file is removed and ``path`` is untouched,
    so a crash or a kill mid-write leaves the previous version readable.

    :raises WriteError: if the file system refuses the write (see
        ``WRITE_FAILURES``), however the writer reported it (torch's zip writer
        raises a RuntimeError after the OSError).
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent
        )
    except OSError as error:
        _raise_write_error(path, error)
        raise
    try:
        set_usual_mode(fd)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        _raise_write_error(path, error)
        raise
    _fsync_directory(path.parent)


def _raise_write_error(path: Path, error: BaseException) -> None:
    """Raise a :class:`WriteError` for ``path`` if ``error`` or an exception it
    arose from is an OSError in ``WRITE_FAILURES``; else return."""
    cause = _write_failure(error)
    if cause is None:
        return
    kept = (
        f"; the previous {path.name} is intact"
        if path.is_file()
        else "; no partial file is left"
    )
    raise WriteError(
        f"could not write {path}: {WRITE_FAILURES[cause.errno]}{kept}",
        path,
        cause.errno,
    ) from cause


def _write_failure(error: BaseException) -> OSError | None:
    # A writer may turn the OSError into an error of its own (torch's zip writer
    # raises "unexpected pos" while handling it), so the chain is searched too.
    # A Ctrl-C or an exit is left as it is.
    seen: set[int] = set()
    current: BaseException | None = error
    while isinstance(current, Exception) and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in WRITE_FAILURES:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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
