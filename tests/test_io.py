"""Streaming input and output: formats, compression, positions, torn lines."""

from __future__ import annotations

import gzip

import orjson
import pytest
import zstandard

from pfx.errors import DataError, InputNotFound
from pfx.io import RecordWriter, drop_torn_tail, iter_input, read_records

PAIR = {"prompt": "Name a fruit.", "chosen": "Apple.", "rejected": "Stone."}


def write_lines(path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(lines))
    return str(path)


def test_iter_input_jsonl_positions(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [orjson.dumps(PAIR) + b"\n", b"\n", b"{bad\n", b"[1]\n"])
    items = list(iter_input([path]))
    assert [item.line for item in items] == [1, 3, 4]
    assert items[0].record == PAIR
    assert items[1].record is None
    assert "invalid JSON" in items[1].error
    assert items[2].error == "expected a JSON object, got an array"


def test_iter_input_torn_last_line(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [orjson.dumps(PAIR) + b"\n", b'{"prompt": "cut'])
    items = list(iter_input([path]))
    assert items[1].record is None
    assert "no newline" in items[1].error


def test_iter_input_bom_and_unicode(tmp_path):
    record = {"prompt": "Wie geht's? 你好 🙂", "chosen": "Gut.", "rejected": "—"}
    path = write_lines(tmp_path / "a.jsonl", [b"\xef\xbb\xbf" + orjson.dumps(record) + b"\n"])
    assert [item.record for item in iter_input([path])] == [record]


def test_iter_input_json_array(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(orjson.dumps([PAIR, PAIR, 3]))
    items = list(iter_input([str(path)]))
    assert [item.line for item in items] == [1, 2, 3]
    assert items[2].record is None


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_iter_input_compressed(tmp_path, suffix):
    data = (orjson.dumps(PAIR) + b"\n") * 3
    packed = gzip.compress(data) if suffix.endswith(".gz") else zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"a{suffix}"
    path.write_bytes(packed)
    assert len(list(iter_input([str(path)]))) == 3


def test_iter_input_csv_line_numbers(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('instruction,response\n"two\nlines",x\nplain,y\n')
    items = list(iter_input([str(path)]))
    assert [item.record["instruction"] for item in items] == ["two\nlines", "plain"]
    assert [item.line for item in items] == [3, 4]


def test_iter_input_missing_file(tmp_path):
    with pytest.raises(InputNotFound, match="file not found; check the path"):
        list(iter_input([str(tmp_path / "nope.jsonl")]))


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.jsonl.zst"])
def test_record_writer_round_trip(tmp_path, name):
    path = str(tmp_path / name)
    with RecordWriter(path) as writer:
        for _ in range(3):
            writer.write(PAIR)
    assert read_records(path) == [PAIR] * 3


def test_drop_torn_tail(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(orjson.dumps(PAIR) + b"\n" + b'{"prompt": "half')
    assert drop_torn_tail(str(path)) == len(b'{"prompt": "half')
    assert path.read_bytes() == orjson.dumps(PAIR) + b"\n"
    assert drop_torn_tail(str(path)) == 0


def test_iter_input_invalid_utf8(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [b'{"prompt": "\xff\xfe"}\n'])
    items = list(iter_input([path]))
    assert items[0].record is None
    assert items[0].error.startswith("invalid UTF-8 text")
