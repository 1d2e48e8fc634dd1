"""Streaming record input and output.

Input: JSONL files, JSON array files (``.json``), CSV/TSV files, each optionally
compressed (``.gz``, ``.zst``), or stdin (``-``). Every record comes with its
source name and line number, so that errors can name ``FILE:LINE``.

Output: JSONL, one object per line, UTF-8, keys in insertion order, to a file
(compressed by suffix) or stdout. Lines are written whole, so a killed process
leaves at most a torn last line, which ``drop_torn_tail`` removes on resume.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
import time
from dataclasses import dataclass
from typing import IO, Any, Iterable, Iterator

import orjson

from pfx.errors import DataError, InputNotFound, RuntimeFailure

STDIN_NAME = "<stdin>"
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class InputLine:
    """One input record and where it came from.

    ``record`` is the parsed object, or None when the line could not be parsed;
    then ``error`` says why. ``raw`` is the original text of the line (for JSON
    array and CSV input, the record re-serialised), kept for ``--rejects``.
    """

    source: str
    line: int
    raw: str
    record: dict[str, Any] | None
    error: str | None = None


def display_name(path: str) -> str:
    return STDIN_NAME if path == "-" else path


def _open_binary(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        handle: IO[bytes] = open(path, "rb")
    except FileNotFoundError:
        raise InputNotFound(path) from None
    except OSError as exc:
        raise RuntimeFailure(f"{path}: cannot open: {exc.strerror}") from None
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    if path.endswith(".zst"):
        import zstandard

        # The zstd reader has no line iteration; a buffered wrapper adds it.
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(handle, closefd=True))  # type: ignore[arg-type]
    return handle


def _base_suffix(path: str) -> str:
    """Return the format suffix of a path, ignoring a compression suffix."""
    name = path
    for compression in (".gz", ".zst"):
        if name.endswith(compression):
            name = name[: -len(compression)]
    return os.path.splitext(name)[1].lower()


def _iter_jsonl(source: str, stream: IO[bytes]) -> Iterator[InputLine]:
    line_number = 0
    for line_bytes in stream:
        line_number += 1
        if line_number == 1 and line_bytes.startswith(UTF8_BOM):
            line_bytes = line_bytes[len(UTF8_BOM) :]
        stripped = line_bytes.strip()
        if not stripped:
            continue
        raw = line_bytes.decode("utf-8", errors="replace").rstrip("\r\n")
        torn = not line_bytes.endswith(b"\n")
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            reason = f"invalid JSON ({exc})"
            if "UTF-8" in str(exc):
                reason = "invalid UTF-8 text: JSONL input must be UTF-8 encoded (re-encode the file, e.g. with iconv)"
            if torn:
                reason = f"invalid JSON in the last line, which has no newline: the file was probably cut off ({exc})"
            yield InputLine(source, line_number, raw, None, reason)
            continue
        if not isinstance(value, dict):
            yield InputLine(source, line_number, raw, None, f"expected a JSON object, got {_json_type(value)}")
            continue
        yield InputLine(source, line_number, raw, value)


def _iter_json_array(source: str, stream: IO[bytes]) -> Iterator[InputLine]:
    data = stream.read()
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    if not data.lstrip().startswith(b"["):
        # A .json file that holds JSON Lines is common enough to accept.
        yield from _iter_jsonl(source, io.BytesIO(data))
        return
    try:
        values = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"invalid JSON array ({exc})", source=source) from None
    # For array files the "line" is the 1-based position of the element.
    for index, value in enumerate(values, start=1):
        raw = orjson.dumps(value).decode()
        if not isinstance(value, dict):
            yield InputLine(source, index, raw, None, f"expected a JSON object, got {_json_type(value)}")
            continue
        yield InputLine(source, index, raw, value)


def _iter_csv(source: str, stream: IO[bytes], delimiter: str) -> Iterator[InputLine]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text, delimiter=delimiter)
    for row in reader:
        # reader.line_num counts physical lines, so a quoted multi-line cell
        # reports the line where the row ends.
        record = {key: value for key, value in row.items() if key is not None}
        yield InputLine(source, reader.line_num, orjson.dumps(record).decode(), record)


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def iter_input(paths: Iterable[str]) -> Iterator[InputLine]:
    """Yield every record of every input in order; ``-`` is stdin, no paths means stdin."""
    paths = list(paths) or ["-"]
    for path in paths:
        source = display_name(path)
        stream = _open_binary(path)
        suffix = _base_suffix(path)
        try:
            if suffix == ".json":
                yield from _iter_json_array(source, stream)
            elif suffix == ".csv":
                yield from _iter_csv(source, stream, ",")
            elif suffix == ".tsv":
                yield from _iter_csv(source, stream, "\t")
            else:
                yield from _iter_jsonl(source, stream)
        except (EOFError, OSError) as exc:
            raise DataError(f"cannot read compressed input ({exc})", source=source) from None
        finally:
            if path != "-":
                stream.close()


def read_records(path: str) -> list[dict[str, Any]]:
    """Read a whole small file of records (a side input such as ``--against``), failing on bad lines."""
    records = []
    for item in iter_input([path]):
        if item.record is None:
            raise DataError(item.error or "invalid record", source=item.source, line=item.line)
        records.append(item.record)
    return records


def dumps(record: Any) -> bytes:
    """Serialise one record as a JSONL line (with the newline)."""
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


class RecordWriter:
    """Write records as JSONL to a path (``-`` for stdout), compressed by suffix.

    Lines are buffered; a write flushes the buffer when ``flush_seconds`` have
    passed since the last flush (0 flushes every line), so a downstream command
    in a pipeline receives records while this one runs. With
    ``append=True`` the file is extended (resume); a torn last line left by a
    killed run must be removed first with ``drop_torn_tail``.
    """

    def __init__(self, path: str | None, append: bool = False, flush_seconds: float = 0.5):
        self.path = path or "-"
        self.flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self.count = 0
        mode = "ab" if append else "wb"
        if self.path == "-":
            self._raw: IO[bytes] | None = None
            self._stream: IO[bytes] = sys.stdout.buffer
        else:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            self._raw = open(self.path, mode)
            if self.path.endswith(".gz"):
                self._stream = gzip.GzipFile(fileobj=self._raw, mode=mode)  # type: ignore[assignment]
            elif self.path.endswith(".zst"):
                import zstandard

                self._stream = zstandard.ZstdCompressor().stream_writer(self._raw)  # type: ignore[assignment]
            else:
                self._stream = self._raw

    def write(self, record: Any) -> None:
        self._stream.write(dumps(record))
        self.count += 1
        now = time.monotonic()
        if now - self._last_flush >= self.flush_seconds:
            self.flush()
            self._last_flush = now

    def flush(self) -> None:
        # Compressed streams are flushed only at close: a zstd or gzip frame
        # flushed mid-way costs ratio and is not resumable anyway.
        if self._stream is self._raw or self._raw is None:
            self._stream.flush()

    def close(self) -> None:
        if self._raw is None:
            self._stream.flush()
            return
        if self._stream is not self._raw:
            self._stream.close()
        if not self._raw.closed:
            self._raw.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drop_torn_tail(path: str) -> int:
    """Remove a last line without a newline (left by a killed writer). Return bytes removed."""
    if not os.path.exists(path) or path.endswith((".gz", ".zst")):
        return 0
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Walk back to the previous newline in blocks.
        position = size
        while position > 0:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline != -1:
                keep = position + newline + 1
                handle.truncate(keep)
                return size - keep
        handle.truncate(0)
        return size
