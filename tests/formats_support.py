"""Run one reader over a file the way ``pfx convert`` does, for the reader tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from pfx.errors import RecordError
from pfx.formats import ReadOptions, load_reader
from pfx.formats.fields import ADDED, DROPPED
from pfx.io import InputLine, iter_input

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# --from NAME -> fixture file
FIXTURE_FILES = {
    "ultrafeedback": "ultrafeedback.jsonl",
    "ultrafeedback-binarized": "ultrafeedback_binarized.jsonl",
    "shp": "shp.jsonl",
    "pku-saferlhf": "pku_saferlhf.jsonl",
    "helpsteer2": "helpsteer2.jsonl",
    "nectar": "nectar.jsonl",
    "arena": "arena.jsonl",
    "mt-bench-human": "mt_bench_human.jsonl",
    "alpaca-eval": "alpaca_eval.jsonl",
    "sparse-feedback-ratings": "sparse_feedback_ratings.csv",
    "sparse-feedback-rankings": "sparse_feedback_rankings.csv",
}
# Readers that fold rows sharing a prompt into one list record, one row per completion.
GROUPING_READERS = ("helpsteer2", "sparse-feedback-ratings")


class Conversion:
    """The records, rejects and counts of one reader run."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.rejects: list[tuple[int, RecordError]] = []
        self.counts: dict[str, int] = {}
        self.delivered = 0
        self.books_balance = False

    @property
    def reasons(self) -> list[str]:
        return [error.reason for _, error in self.rejects]


def convert_file(name: str, path: str | Path, **options: Any) -> Conversion:
    """Convert ``path`` with the reader ``name``; bad records are collected, as under ``--on-error skip``."""
    return convert_paths(name, [path], **options)


def convert_paths(name: str, paths: list[str | Path], **options: Any) -> Conversion:
    """Convert several input files in one run, as ``pfx convert FILE FILE`` does."""
    result = Conversion()
    read_options = ReadOptions(**options)

    def reject(item: InputLine, error: RecordError) -> None:
        result.rejects.append((item.line, error))

    def delivered():
        for item in iter_input([str(path) for path in paths]):
            if item.record is not None:
                result.delivered += 1
                yield item

    reader = load_reader(name)
    result.records = list(reader.convert(delivered(), read_options, reject))
    result.counts = dict(read_options.counts)
    # Every row is in a record, rejected, or counted as dropped; restored rows count as added.
    rows_in_records = sum(len(record["completions"]) if name in GROUPING_READERS else 1 for record in result.records)
    dropped = sum(n for count, n in result.counts.items() if count.startswith(DROPPED))
    added = sum(n for count, n in result.counts.items() if count.startswith(ADDED))
    result.books_balance = result.delivered + added == rows_in_records + len(result.rejects) + dropped
    return result


def convert_records(name: str, records: list[dict[str, Any]], tmp_path: Path, **options: Any) -> Conversion:
    """Write ``records`` as JSONL under ``tmp_path`` and convert them."""
    path = tmp_path / "input.jsonl"
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return convert_file(name, path, **options)
