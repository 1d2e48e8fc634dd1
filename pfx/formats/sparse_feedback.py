"""Read the ratings and rankings feedback of "Peering Through Preferences" (Bansal et al., ICLR 2024).

The Hritikbansal/sparse_feedback repository ships its feedback as CSV files
without a header row:

- ratings, ``instruction,input,response,rating``: one response rated 1-7 per
  row. ``sparse-feedback-ratings`` groups the rows of one instruction and
  input into a list record with ``scores`` and ``meta.score_scale: [1, 7]``.
  The whole input is grouped, not only consecutive rows, because the
  repository rates each generator in its own file over the same
  instructions. Its files have at most a few thousand rows.
- rankings, ``instruction,input,response1,response2,ranking``: one pair per
  row, judged in both answer orders. ``(a)`` or ``(b)`` means both orders
  agreed on that response; ``equal`` means the judge picked the same position
  both times, a tie caused by position bias. ``sparse-feedback-rankings``
  writes a pair, or for ``equal`` a tie pair (``response1`` as ``chosen``,
  ``meta.tie: true``, ``confidence: 0.5``) for the convert ``--ties`` policy.

The prompt is the instruction, followed by a blank line and the input when
there is one. The repository wrote an empty input as the text ``nan``
(pandas' missing value); it is read as empty and counted as ``input nan read
as empty``. Files with a header row of these column names work too.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Iterator

import orjson

from pfx.errors import RecordError
from pfx.formats import ReadOptions
from pfx.formats.fields import (ADDED, DROPPED, FeedbackReader, count, join_input, optional_number, pair, require_choice,
                                require_text)
from pfx.io import InputLine
from pfx.records import json_type_name

RATING_COLUMNS = ("instruction", "input", "response", "rating")
RANKING_COLUMNS = ("instruction", "input", "response1", "response2", "ranking")
RANKINGS = ("(a)", "(b)", "equal")
SCORE_SCALE = [1, 7]
MISSING_INPUT = "nan"
FIRST_ROW_COUNT = ADDED + "first CSV row read as data"


def header_rows(items: Iterable[InputLine], columns: tuple[str, ...], options: ReadOptions) -> Iterator[InputLine]:
    """Give each record the source's column names, restoring the first row of a header-less CSV file.

    The CSV reader takes a file's first row as its header, so in a header-less
    file the first row's cells arrive as the keys of every record. Such a
    file is recognised by its first record's keys not being ``columns``. The
    keys are turned back into the first row (line 1), counted as ``added:
    first CSV row read as data``, and each record's values are renamed by
    position. A row of the wrong length comes back with
    ``record`` None and the reason in ``error``.
    """
    # NOTE: a header-less file of one row reaches the reader as a header with no records,
    # so that row is lost without a count; the input layer cannot tell it from a header.
    source = None
    headerless = False
    for item in items:
        assert item.record is not None
        if item.source != source:
            source = item.source
            keys = list(item.record)
            headerless = not set(columns) <= set(keys)
            if headerless:
                count(options, FIRST_ROW_COUNT)
                yield restored_row(item.source, 1, keys, columns)
        if headerless:
            yield restored_row(item.source, item.line, list(item.record.values()), columns)
        else:
            yield item


def restored_row(source: str, line: int, cells: list[Any], columns: tuple[str, ...]) -> InputLine:
    """Return the cells of a header-less row as a record named by ``columns``."""
    # NOTE: in the first row two equal cells collapse into one header key, so that row
    # comes out one cell short and is rejected.
    if len(cells) != len(columns) or None in cells:
        raw = orjson.dumps(cells).decode()
        found = len([cell for cell in cells if cell is not None])
        return InputLine(source, line, raw, None,
                         f"expected {len(columns)} cells ({', '.join(columns)}), got {found}")
    record = dict(zip(columns, cells))
    return InputLine(source, line, orjson.dumps(record).decode(), record)


class SparseFeedbackReader(FeedbackReader):
    """Shared parts of the ratings and rankings readers."""

    columns: ClassVar[tuple[str, ...]]

    def detect(self, record: dict[str, Any]) -> bool:
        keys = list(record)
        if set(self.columns) <= set(keys):
            return True
        # A header-less file: the first row's cells are the keys, the second row's the values.
        values = list(record.values())
        return len(keys) == len(self.columns) and self.is_label(keys[-1]) and self.is_label(values[-1])

    def is_label(self, value: Any) -> bool:
        raise NotImplementedError

    def prompt(self, record: dict[str, Any], options: ReadOptions) -> str:
        instruction = require_text(record, "instruction")
        extra_input = record.get("input") or ""
        if not isinstance(extra_input, str):
            raise RecordError(f"field 'input': expected a string, got {json_type_name(extra_input)}", "input",
                              "invalid input")
        if extra_input == MISSING_INPUT:
            count(options, "input nan read as empty")
            extra_input = ""
        return join_input(instruction, extra_input)

    def rows(self, items: Iterable[InputLine], options: ReadOptions, reject: Any) -> Iterator[InputLine]:
        """Yield records with named columns; rows of the wrong length go through the error policy."""
        for item in header_rows(items, self.columns, options):
            if item.record is None:
                reject(item, RecordError(item.error or "invalid row", None, "wrong number of cells"))
                continue
            yield item


class RatingsReader(SparseFeedbackReader):
    name = "sparse-feedback-ratings"
    description = "sparse_feedback ratings CSV: one response rated 1-7 per row (rows of one instruction -> lists)"
    specificity = 15
    columns = RATING_COLUMNS

    def is_label(self, value: Any) -> bool:
        return isinstance(value, (str, int)) and str(value).strip() in {str(n) for n in range(1, 8)}

    def rating(self, record: dict[str, Any]) -> int | float:
        value = optional_number(record.get("rating"), "rating")
        if value is None or not SCORE_SCALE[0] <= value <= SCORE_SCALE[1]:
            raise RecordError(f"field 'rating': expected a rating 1-7, got {record.get('rating')!r}", "rating",
                              "invalid rating")
        return value

    def convert(self, items: Iterable[InputLine], options: ReadOptions, reject: Any) -> Iterator[dict[str, Any]]:
        # prompt -> {"items": [...], "responses": [...], "scores": [...], "input": raw input}
        groups: dict[str, dict[str, Any]] = {}
        for item in self.rows(items, options, reject):
            record = item.record
            assert record is not None
            try:
                prompt = self.prompt(record, options)
                response = require_text(record, "response")
                rating = self.rating(record)
            except RecordError as error:
                reject(item, error)
                continue
            group = groups.setdefault(prompt, {"items": [], "responses": [], "scores": [], "input": record.get("input")})
            if response in group["responses"]:
                # The repository's own scripts keep one rating per response, so pfx keeps the first.
                count(options, DROPPED + "repeated response rating")
                continue
            group["items"].append(item)
            group["responses"].append(response)
            group["scores"].append(rating)

        for prompt, group in groups.items():
            if len(group["responses"]) < 2:
                reject(group["items"][0], RecordError(
                    "only one rated response for this instruction, and a list record needs at least 2; pass "
                    "every ratings file for these instructions together", "response", "single response for prompt"))
                continue
            meta = {"format": self.name, "score_scale": SCORE_SCALE, "input": group["input"]}
            yield {"prompt": prompt, "completions": group["responses"], "scores": group["scores"], "meta": meta}


class RankingsReader(SparseFeedbackReader):
    name = "sparse-feedback-rankings"
    description = "sparse_feedback rankings CSV: two responses judged in both orders, (a)/(b)/equal (pairs)"
    specificity = 15
    columns = RANKING_COLUMNS

    def is_label(self, value: Any) -> bool:
        return value in RANKINGS

    def convert(self, items: Iterable[InputLine], options: ReadOptions, reject: Any) -> Iterator[dict[str, Any]]:
        for item in self.rows(items, options, reject):
            try:
                yield from self.convert_record(item.record or {}, options)
            except RecordError as error:
                reject(item, error)

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        prompt = self.prompt(record, options)
        responses = (require_text(record, "response1"), require_text(record, "response2"))
        ranking = require_choice(record, "ranking", RANKINGS)
        chosen_index = 1 if ranking == "(b)" else 0
        meta = {"format": self.name, "ranking": ranking, "input": record.get("input")}
        yield pair(prompt, responses[chosen_index], responses[1 - chosen_index], meta, tie=ranking == "equal")


READERS = {reader.name: reader for reader in (RatingsReader(), RankingsReader())}
