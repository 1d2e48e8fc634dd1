"""Write Axolotl ``chatml.intel`` DPO records: ``{system?, question, chosen, rejected}``.

The type stores one question, an optional system text and one answer per side,
all strings. A standard pair maps directly; a conversational pair is accepted
when its prompt is (system,) user and each answer one assistant message.
Anything longer is rejected, because Axolotl's chatml strategies read only
the first turn and would drop the rest. Other fields are written alongside.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Writer
from pfx.formats.messages import passthrough, single_answer

PAIR_FIELDS = ("prompt", "chosen", "rejected")


class AxolotlWriter(Writer):
    name = "axolotl"
    description = "Axolotl chatml.intel: system?, question, chosen, rejected (single-turn pairs)."
    kinds = ("pair",)

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        rest = passthrough(record, PAIR_FIELDS)
        prompt = record["prompt"]
        if isinstance(prompt, str):
            if not isinstance(record["chosen"], str) or not isinstance(record["rejected"], str):
                raise RecordError("record mixes a string prompt with conversational answers; use --style", "prompt",
                                  "mixed styles")
            return [{"question": prompt, "chosen": record["chosen"], "rejected": record["rejected"], **rest}]

        system = [message["content"] for message in prompt[:1] if message["role"] == "system"]
        turns = prompt[len(system):]
        if len(turns) != 1 or turns[0]["role"] != "user":
            raise RecordError(
                f"field 'prompt': chatml.intel accepts one user question (after an optional system message), got "
                f"{len(prompt)} message(s); write --to pfx or trl to keep every turn",
                "prompt",
                "multi-turn prompt",
            )
        out: dict[str, Any] = {"system": system[0]} if system else {}
        out["question"] = turns[0]["content"]
        out["chosen"] = single_answer(record["chosen"], "chosen", self.name)["content"]
        out["rejected"] = single_answer(record["rejected"], "rejected", self.name)["content"]
        return [{**out, **rest}]


WRITER = AxolotlWriter()
