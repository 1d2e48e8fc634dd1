"""The runtime every record command shares: input, output, the error policy and the summary.

A command creates one ``Run`` from its I/O options, reads ``run.items()``,
writes with ``run.write()``, rejects bad input with ``run.reject()`` and ends
with ``run.finish()``. The run keeps the books: every input record is written,
rejected, or accounted for by a named count (expanded, merged, dropped tie),
and the summary on stderr says so.

Error policy (``--on-error``):
  fail  stop at the first bad record with ``FILE:LINE: reason`` and exit 65.
  skip  write the bad line unchanged, with the reason, to ``--rejects FILE``,
        count it, and go on.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Iterator, TypeVar

import orjson

from pfx.errors import DataError, RecordError, RuntimeFailure
from pfx.io import InputLine, RecordWriter, iter_input

T = TypeVar("T")


@dataclass
class IOOptions:
    """The I/O options shared by every record command (see ``pfx.options.io_options``)."""

    files: tuple[str, ...] = ()
    output: str | None = None
    on_error: str = "fail"
    rejects: str | None = None
    summary: str | None = None
    quiet: bool = False
    progress: bool = False


@dataclass
class Run:
    """Bookkeeping and I/O of one command invocation."""

    command: str
    options: IOOptions
    append: bool = False
    read: int = 0
    written: int = 0
    rejected: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._started = time.monotonic()
        self._writer: RecordWriter | None = None
        self._rejects_handle = None
        if self.options.rejects:
            self._rejects_handle = _open_for_writing(self.options.rejects, "--rejects")

    # -- input ---------------------------------------------------------------

    def items(self, files: Iterable[str] | None = None) -> Iterator[InputLine]:
        """Yield parsed input records; unparseable lines go through the error policy."""
        for item in self.progress(iter_input(self.options.files if files is None else files), unit="rec"):
            self.read += 1
            if item.record is None:
                self.reject(item, item.error or "invalid record", reason="invalid JSON")
                continue
            yield item

    def progress(self, iterable: Iterable[T], total: int | None = None, unit: str = "it") -> Iterable[T]:
        """Wrap an iterable in a tqdm bar on stderr when stderr is a terminal or ``--progress`` is given."""
        show = self.options.progress or (sys.stderr.isatty() and not self.options.quiet)
        if not show:
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, total=total, unit=unit, desc=f"pfx {self.command}", file=sys.stderr, leave=False)

    # -- output --------------------------------------------------------------

    @property
    def writer(self) -> RecordWriter:
        if self._writer is None:
            self._writer = RecordWriter(self.options.output, append=self.append)
        return self._writer

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)
        self.written += 1

    # -- errors --------------------------------------------------------------

    def reject(self, item: InputLine, message: str, reason: str | None = None, field: str | None = None) -> None:
        """Apply the error policy to one bad input record.

        ``message`` is the full explanation (field, value, expected); ``reason``
        is the short name under which the summary counts it. Under ``fail`` this
        raises ``DataError``; under ``skip`` it writes the line to ``--rejects``.
        """
        if self.options.on_error == "fail":
            hint = " (use --on-error skip --rejects FILE to set such records aside and go on)"
            raise DataError(message + hint, source=item.source, line=item.line)
        self.rejected[reason or message] += 1
        if self._rejects_handle is not None:
            entry = {"source": item.source, "line": item.line, "reason": message, "field": field, "raw": item.raw}
            self._rejects_handle.write(orjson.dumps(entry) + b"\n")

    def reject_error(self, item: InputLine, error: RecordError) -> None:
        """Reject an item for a ``RecordError`` raised by library code."""
        self.reject(item, str(error), reason=error.reason, field=error.field)

    def count(self, name: str, n: int = 1) -> None:
        """Count a named event for the summary (``ties dropped``, ``expanded``, ...)."""
        self.counts[name] += n

    # -- end -----------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "read": self.read,
            "written": self.written,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected),
            "counts": dict(self.counts),
            **self.extra,
            "seconds": round(time.monotonic() - self._started, 3),
        }

    def summary_line(self) -> str:
        line = f"pfx {self.command}: read {self.read}, wrote {self.written}"
        total_rejected = sum(self.rejected.values())
        if total_rejected:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in self.rejected.most_common())
            line += f", rejected {total_rejected} ({reasons})"
        if self.counts:
            line += "; " + ", ".join(f"{name}: {n}" for name, n in self.counts.items())
        return line

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._rejects_handle is not None:
            self._rejects_handle.close()
            self._rejects_handle = None

    def finish(self) -> None:
        """Close the output and report the summary on stderr (and ``--summary FILE``)."""
        if self._writer is None and self.options.output not in (None, "-"):
            # Create the output file even when nothing was written, so Make targets exist.
            _ = self.writer
        self.close()
        if not self.options.quiet:
            print(self.summary_line(), file=sys.stderr)
        if self.options.summary:
            with _open_for_writing(self.options.summary, "--summary") as handle:
                handle.write(orjson.dumps(self.summary(), option=orjson.OPT_INDENT_2) + b"\n")


def _open_for_writing(path: str, option: str) -> IO[bytes]:
    """Open a side output such as --rejects FILE, creating its directory as RecordWriter does for -o."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return open(path, "wb")
    except OSError as exc:
        raise RuntimeFailure(f"{option} {path}: cannot write: {exc.strerror or exc}") from None
