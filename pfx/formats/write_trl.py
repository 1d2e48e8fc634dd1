"""Write TRL preference (pair) and unpaired preference records.

TRL's dataset shapes are pfx's pair and unpaired records, so records pass
through; ``--style`` picks standard or conversational. TRL requires one style
per record, so a record that mixes a string prompt with conversational answers
is rejected.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Writer
from pfx.formats.messages import TEXT_FIELDS


class TRLWriter(Writer):
    name = "trl"
    description = "TRL preference or unpaired preference, standard or conversational (--style)."
    kinds = ("pair", "unpaired")

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        styles = {isinstance(record[field], str) for field in TEXT_FIELDS if field in record}
        if len(styles) > 1:
            raise RecordError(
                "record mixes strings and conversations, which TRL does not accept; use --style standard or "
                "--style conversational",
                "prompt",
                "mixed styles",
            )
        return [record]


WRITER = TRLWriter()
