"""Reading a user's data matrix from a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppl_models.errors import DataError

ARRAY_SUFFIXES = (".npy", ".csv", ".txt")


def load_array_file(path: str | Path) -> np.ndarray:
    """Read an (N, D) matrix from ``.npy`` (no pickled objects), or from ``.csv`` /
    ``.txt`` (comma- or whitespace-separated, ``#`` comments).

    :raises DataError: for a missing file, an unknown suffix or unparsable content.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"data file {path} is a directory, not a file")
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix in (".csv", ".txt"):
            delimiter = "," if suffix == ".csv" else None
            return np.loadtxt(path, delimiter=delimiter, ndmin=2)
    except (ValueError, OSError, EOFError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        hint = _header_hint(path) if suffix in (".csv", ".txt") else ""
        raise DataError(f"cannot read data file {path}: {first}{hint}") from None
    expected = ", ".join(ARRAY_SUFFIXES)
    raise DataError(f"data file {path} has suffix {suffix!r}: expected {expected}")


def _header_hint(path: Path) -> str:
    """A hint when the first line that is not a comment holds no number: a header
    row, which the reader takes for data."""
    with path.open(errors="replace") as lines:
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                fields = [f for f in line.replace(",", " ").split() if f]
                if fields and not any(_is_number(f) for f in fields):
                    return (
                        f"; its first line ({line[:60]!r}) looks like a header: remove "
                        "it or start it with #"
                    )
                return ""
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
