"""Write pfx records: every record kind (prompt records too), every field, unchanged."""

from __future__ import annotations

from typing import Any, Iterable

from pfx.formats import Writer
from pfx.records import validate


class PfxWriter(Writer):
    name = "pfx"
    description = "pfx records: pair, unpaired, list or prompt (TRL shapes), every field kept."
    kinds = ("pair", "unpaired", "list", "prompt")

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        validate(record, kinds=self.kinds)
        return [record]


WRITER = PfxWriter()
