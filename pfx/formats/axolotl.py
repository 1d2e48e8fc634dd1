"""Axolotl DPO dataset types ``chatml.intel`` and ``chatml.argilla`` (also their ``llama3.*`` twins).

- intel: ``{system?, question, chosen, rejected}`` (e.g. Intel/orca_dpo_pairs).
- argilla: ``{system?, instruction, chosen_response, rejected_response}``.

All values are strings. Without a system text the record reads as standard
strings. With one it reads as a conversation (system, user) with one-message
answers, so the system text stays apart from the question.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Reader, ReadOptions
from pfx.formats.messages import passthrough
from pfx.records import json_type_name

# Axolotl type -> (prompt field, chosen field, rejected field)
SHAPES = {
    "chatml.intel": ("question", "chosen", "rejected"),
    "chatml.argilla": ("instruction", "chosen_response", "rejected_response"),
}


def shape_of(record: dict[str, Any]) -> str | None:
    for shape, fields in SHAPES.items():
        if all(field in record for field in fields):
            return shape
    return None


class AxolotlReader(Reader):
    name = "axolotl"
    description = "Axolotl DPO types chatml.intel (question/chosen/rejected) and chatml.argilla (instruction/chosen_response/rejected_response)."
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        shape = shape_of(record)
        return shape is not None and all(isinstance(record[field], str) for field in SHAPES[shape])

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        shape = shape_of(record)
        if shape is None:
            expected = "; ".join(f"{name}: {', '.join(fields)}" for name, fields in SHAPES.items())
            raise RecordError(f"not an Axolotl DPO record (expected the fields of {expected})", None, "unknown record shape")
        prompt_field, chosen_field, rejected_field = SHAPES[shape]
        for field in (prompt_field, chosen_field, rejected_field, "system"):
            if field in record and record[field] is not None and not isinstance(record[field], str):
                raise RecordError(f"field '{field}': expected a string, got {json_type_name(record[field])}", field,
                                  f"invalid {field}")
        rest = passthrough(record, (prompt_field, chosen_field, rejected_field, "system"))
        system = record.get("system") or ""
        if not system:
            pair = {"prompt": record[prompt_field], "chosen": record[chosen_field], "rejected": record[rejected_field]}
        else:
            pair = {
                "prompt": [{"role": "system", "content": system}, {"role": "user", "content": record[prompt_field]}],
                "chosen": [{"role": "assistant", "content": record[chosen_field]}],
                "rejected": [{"role": "assistant", "content": record[rejected_field]}],
            }
        return [{**pair, **rest}]


READER = AxolotlReader()
