"""Exceptions that end a command, and the exit code each one maps to.

Exit codes follow sysexits where one exists: 0 success, 1 runtime failure
(model, network, disk), 2 usage error, 65 data error (EX_DATAERR), 130
interrupted. Usage errors are click's own ``UsageError``/``BadParameter``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_DATAERR = 65
EXIT_INTERRUPTED = 130


class PfxError(Exception):
    """An error that pfx reports as one line on stderr, without a traceback."""

    exit_code = EXIT_RUNTIME


class RuntimeFailure(PfxError):
    """A model, network or disk failure: exit 1."""

    exit_code = EXIT_RUNTIME


class InputNotFound(PfxError):
    """An input file named on the command line does not exist: a usage error, exit 2."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str):
        super().__init__(f"{path}: file not found; check the path, or give - to read standard input")
        self.source = path


class RecordError(ValueError):
    """A record is invalid. Raised by library code that does not know the input position.

    The command runtime catches it and turns it into a ``DataError`` that names the
    file and line, or into a rejected record under ``--on-error skip``.
    """

    def __init__(self, message: str, field: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.field = field
        # Short, countable name of the fault ("empty chosen"); the summary groups rejects by it.
        self.reason = reason or message


class DataError(PfxError):
    """Bad input data at a known position: exit 65 (EX_DATAERR)."""

    exit_code = EXIT_DATAERR

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        if source is not None and line is not None:
            message = f"{source}:{line}: {message}"
        elif source is not None:
            message = f"{source}: {message}"
        super().__init__(message)
        self.source = source
        self.line = line
