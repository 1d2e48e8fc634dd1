"""The conversion pipeline behind ``pfx convert``: detect, read, transform, write.

Each input line goes through the reader into pfx records; each pfx record
goes through the transforms (lists to pairs, the tie policy, pairs to
unpaired, the answer style) and the writer. The books are kept so that

    read + added = written + rejected + dropped + merged - expanded

where ``added`` counts rows a reader restored (the first row of a header-less
CSV file, which the CSV layer reads as column names), ``dropped`` counts
records left out by a documented policy (ties, lists with no pair above
``--min-margin``), ``merged`` counts input rows a reader
folded into another record, and ``expanded`` counts the extra records made
from one input (a list into several pairs, a pair into two unpaired records).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from pfx.errors import RecordError
from pfx.formats import READERS, Reader, Writer
from pfx.formats.messages import ANSWER_FIELDS, Renderer, to_conversational, to_standard
from pfx.records import is_empty, record_kind, validate
from pfx.transforms import PairOptions, is_tie, list_to_pairs, pair_to_unpaired

# How many leading records auto-detection looks at.
DETECT_SAMPLE = 20
STYLES = ("keep", "standard", "conversational")


class DetectionError(RecordError):
    """The first records match no format, or several equally well."""


@dataclass
class ConvertOptions:
    """Transform settings of ``pfx convert``, applied to each pfx record after reading."""

    pairs: PairOptions = field(default_factory=PairOptions)
    expand_lists: bool = False  # turn list records into pairs (always when the writer cannot hold lists)
    unpair: bool = False  # split pairs into unpaired records
    style: str = "keep"  # one of STYLES
    render: Renderer | None = None  # chat template for conversational -> standard


def detect_format(records: list[dict[str, Any]], readers: dict[str, Reader]) -> str:
    """Return the name of the reader that detects every sampled record, the most specific first.

    Raises ``DetectionError`` listing the candidates when no reader detects
    them all or when two equally specific readers do.
    """
    matches = {name: sum(1 for record in records if reader.detect(record)) for name, reader in readers.items()}
    complete = [name for name, count in matches.items() if count == len(records)]
    if not complete:
        partial = sorted((name for name, count in matches.items() if count), key=lambda name: -matches[name])
        found = ", ".join(f"{name} ({matches[name]} of {len(records)})" for name in partial) or "none"
        raise DetectionError(
            f"cannot detect the input format from {sample_name(len(records))}: no format matches "
            f"{'it' if len(records) == 1 else 'them all'} "
            f"(partial matches: {found}; fields of the first record: {_field_list(records[0])}). "
            f"Name it with --from, one of: {', '.join(READERS)}",
            None,
            "unknown format",
        )
    best = max(readers[name].specificity for name in complete)
    winners = [name for name in complete if readers[name].specificity == best]
    if len(winners) > 1:
        raise DetectionError(
            f"the input matches several formats equally well ({', '.join(winners)}); name one with --from",
            None,
            "ambiguous format",
        )
    return winners[0]


def is_blank(value: Any) -> bool:
    """Return ``pfx.records.is_empty(value)``, without copying long strings (this runs on every record)."""
    if isinstance(value, str):
        return not value or value.isspace()
    return is_empty(value)


def marked_tie(record: dict[str, Any]) -> bool:
    """True for a pair a reader marked as a tie (``meta.tie``), such as an arena or AlpacaEval tie vote."""
    meta = record.get("meta")
    return isinstance(meta, dict) and meta.get("tie") is True


def sample_name(count: int) -> str:
    """Return "the first record" or "the first N records", for messages about detection."""
    return "the first record" if count == 1 else f"the first {count} records"


def _field_list(record: dict[str, Any], limit: int = 8, width: int = 40) -> str:
    """Name a record's fields for a message, cut to ``limit`` names of at most ``width`` characters."""
    names = [name if len(name) <= width else name[: width - 3] + "..." for name in list(record)[:limit]]
    if len(record) > limit:
        names.append(f"and {len(record) - limit} more")
    return ", ".join(repr(name) if "\n" in name else name for name in names) or "none"


class Converter:
    """Transform pfx records for one writer and keep the counts of what happened to them."""

    def __init__(self, writer: Writer, options: ConvertOptions):
        self.writer = writer
        self.options = options
        self.rng = random.Random(options.pairs.seed)
        self.counts: Counter = Counter()
        self.unpair = options.unpair or "pair" not in writer.kinds
        # Unpaired output from a list goes through pairs, so --unpair expands lists too.
        self.expand_lists = options.expand_lists or self.unpair or "list" not in writer.kinds

    def convert(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Return the target records of one pfx record: empty when a policy drops it (counted).

        Raises ``RecordError`` when the record is invalid or the target format
        cannot hold it; then nothing of it is written.
        """
        # Readers build records from many source shapes; check each one before the transforms rely on it.
        validate(record)
        records = self._expand(record)
        if not records:
            return []
        if len(records) > 1:
            self.counts["expanded"] += len(records) - 1

        targets = []
        for pfx_record in records:
            pfx_record = self._restyle(pfx_record)
            if record_kind(pfx_record) not in self.writer.kinds:
                raise RecordError(
                    f"--to {self.writer.name} does not accept {record_kind(pfx_record)} records "
                    f"(it accepts {', '.join(self.writer.kinds)})",
                    None,
                    f"{record_kind(pfx_record)} record",
                )
            for dropped in self.writer.dropped_fields(pfx_record):
                self.counts[f"dropped field {dropped}"] += 1
            written = list(self.writer.write_record(pfx_record))
            if not written:
                self.counts[f"dropped: {self.writer.drop_reason}"] += 1
            targets.extend(written)
        return targets

    def _expand(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Apply lists to pairs, the tie policy and pairs to unpaired; count what each step drops."""
        kind = record_kind(record)
        if not self.writer.reads_answers:
            return [record]
        if kind == "list" and self.expand_lists:
            pairs_options = self.options.pairs
            pairs, ties_dropped = list_to_pairs(record, pairs_options.strategy, pairs_options.min_margin, self.rng,
                                                pairs_options.ties)
            # list_to_pairs sees equal scores; two completions with the same text are a tie as well.
            tied = [pair for pair in pairs if is_tie(pair)]
            if pairs_options.ties == "drop":
                pairs = [pair for pair in pairs if not is_tie(pair)]
                ties_dropped += len(tied)
            else:
                self.counts["ties kept"] += len(tied)
            if ties_dropped:
                self.counts["tied pairs dropped"] += ties_dropped
            if not pairs:
                self.counts["dropped: list with no pair" if ties_dropped == 0 else "dropped: list of ties"] += 1
                return []
            for pair in pairs:
                self._note_empties(pair)
            if self.unpair:
                for pair in pairs:
                    self._check_unpairable(pair)
                return [unpaired for pair in pairs for unpaired in pair_to_unpaired(pair)]
            return pairs

        if kind == "pair":
            self._note_empties(record)
            if record["chosen"] == record["rejected"]:
                self.counts["identical answers"] += 1
            if is_tie(record) or marked_tie(record):
                if self.options.pairs.ties == "drop":
                    self.counts["dropped: tie"] += 1
                    return []
                self.counts["ties kept"] += 1
            if self.unpair:
                self._check_unpairable(record)
                return list(pair_to_unpaired(record))
            return [record]

        if kind == "unpaired":
            self._note_empties(record)
        return [record]

    def _check_unpairable(self, pair: dict[str, Any]) -> None:
        # Unpaired output labels one answer good and the other bad, which a tie cannot say.
        if is_tie(pair) or marked_tie(pair):
            raise RecordError(
                "a tied pair has no desirable and undesirable answer, so it cannot become unpaired records "
                "(use --ties drop)",
                None,
                "tie cannot be unpaired",
            )

    def _note_empties(self, record: dict[str, Any]) -> None:
        """Count empty prompts and answers (they are kept) and multi-turn answers."""
        if "prompt" in record and is_blank(record["prompt"]):
            self.counts["empty prompt"] += 1
        for name in ANSWER_FIELDS:
            value = record.get(name)
            if value is None:
                continue
            if is_blank(value):
                self.counts[f"empty {name}"] += 1
        if any(isinstance(record.get(name), list) and len(record[name]) > 1 for name in ("chosen", "rejected")):
            self.counts["multi-turn answers"] += 1

    def _restyle(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.options.style == "conversational":
            return to_conversational(record)
        if self.options.style == "standard":
            return to_standard(record, self.options.render)
        return record


@dataclass
class Tracked:
    """The input line a reader read last; readers that merge rows report the last row of a group."""

    item: Any = None
    delivered: int = 0


def tracked(items: Iterable[Any], state: Tracked) -> Iterator[Any]:
    """Yield ``items`` and remember the current one, so a later stage can name its FILE:LINE."""
    for item in items:
        state.item = item
        state.delivered += 1
        yield item

