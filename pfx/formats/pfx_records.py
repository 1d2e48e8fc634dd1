"""pfx records: pair, unpaired, list and prompt records, read as they are and validated."""

from __future__ import annotations

from typing import Any, Iterable

from pfx.formats import Reader, ReadOptions
from pfx.records import record_kind, validate

# Auto-detection takes a record with only these fields for a prompt record. Many source formats have a
# "prompt" field among others, so their own readers should read those.
PROMPT_RECORD_FIELDS = frozenset({"prompt", "id", "meta"})


class PfxReader(Reader):
    name = "pfx"
    description = "pfx records (pair, unpaired, list or prompt; TRL shapes with an explicit prompt)."
    # Above trl: an explicit-prompt record reads the same either way, and pfx also reads lists.
    specificity = 10

    def detect(self, record: dict[str, Any]) -> bool:
        kind = record_kind(record)
        if kind == "prompt":
            return record.keys() <= PROMPT_RECORD_FIELDS
        return kind in ("pair", "unpaired", "list") and "prompt" in record

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        validate(record)
        return [record]


READER = PfxReader()
