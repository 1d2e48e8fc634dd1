"""pfx records: pair, unpaired and list records, read as they are and validated."""

from __future__ import annotations

from typing import Any, Iterable

from pfx.formats import Reader, ReadOptions
from pfx.records import record_kind, validate


class PfxReader(Reader):
    name = "pfx"
    description = "pfx records (pair, unpaired or list; TRL shapes with an explicit prompt)."
    # Above trl: an explicit-prompt record reads the same either way, and pfx also reads lists.
    specificity = 10

    def detect(self, record: dict[str, Any]) -> bool:
        return record_kind(record) in ("pair", "unpaired", "list") and "prompt" in record

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        validate(record, kinds=("pair", "unpaired", "list"))
        return [record]


READER = PfxReader()
