"""Errors that describe bad input, as opposed to bugs.

Every check on user input raises :class:`UsageError` (or a subclass) with a message
that names the argument and what was expected. The command line turns these into
one line on stderr and exit status 2; from Python they are ordinary ``ValueError``s.
"""

from pathlib import Path


class UsageError(ValueError):
    """Bad input from the user: an argument, a file or data the zoo cannot use."""


class DeviceError(UsageError):
    """A device was asked for that this machine does not have."""


class DataError(UsageError):
    """Data that is missing, malformed or outside what a model accepts."""


class CheckpointError(UsageError):
    """A checkpoint or run directory that cannot be loaded safely."""


class TrainingError(RuntimeError):
    """Training stopped on a fault it cannot recover from; the last checkpoint is
    left intact. The command line exits with status 1.
    """


class NumericalError(TrainingError):
    """A loss or gradient became NaN or infinite.

    :ivar step: the first step (counted over the whole run) whose loss or gradient
        was not finite; None where a parameter was found not finite after a step.
    """

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


class ResourceError(TrainingError):
    """The device ran out of memory."""


class WriteError(TrainingError):
    """A file could not be written: the disk is full, the file too large, the file
    system read-only. The previous version of the file, if any, is intact. The
    command line reports it in one line with exit status 1.

    :ivar path: the file that was being written.
    :ivar errno: the operating system's error number (``errno.ENOSPC``, ...).
    """

    def __init__(self, message: str, path: Path, errno: int) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno
