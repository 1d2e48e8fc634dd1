"""Write prompt records: ``prompt`` (and ``id`` when the record has one), each prompt once.

Pairs, unpaired and list records all give their prompt, so a preference data set
becomes the prompts for ``pfx generate`` (a self-labeling loop, or fresh
samples for judging). The answers, scores and tie policy play no part. A prompt
equal to one already written is left out and counted as
``dropped: repeated prompt``.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from pfx.formats import Writer


class PromptsWriter(Writer):
    name = "prompts"
    description = "Prompts only ({prompt, id}), each distinct prompt once: the input of pfx generate."
    kinds = ("pair", "unpaired", "list")
    reads_answers = False
    drop_reason = "repeated prompt"

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        key = orjson.dumps(record["prompt"], option=orjson.OPT_SORT_KEYS)
        if key in self._seen:
            return []
        self._seen.add(key)
        prompt = {"prompt": record["prompt"]}
        if "id" in record:
            prompt["id"] = record["id"]
        return [prompt]



WRITER = PromptsWriter()
