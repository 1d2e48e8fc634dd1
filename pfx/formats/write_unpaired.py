"""Write unpaired records (KTO/BCO shape): ``prompt``, ``completion``, ``label``.

convert splits each pair into two unpaired records before this writer receives
it: the chosen answer labelled true, the rejected one false.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.formats import Writer


class UnpairedWriter(Writer):
    name = "unpaired"
    description = "Unpaired (KTO/BCO): each pair becomes a chosen record (label true) and a rejected one (false)."
    kinds = ("unpaired",)

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        return [record]


WRITER = UnpairedWriter()
