"""Write pfx records: every record kind (prompt records too), every field, unchanged."""

from __future__ import annotations

from typing import Any, Iterable

from pfx.formats import Writer


class PfxWriter(Writer):
    name = "pfx"
    description = "pfx records: pair, unpaired, list or prompt (TRL shapes), every field kept."
    kinds = ("pair", "unpaired", "list", "prompt")

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        return [record]


WRITER = PfxWriter()
