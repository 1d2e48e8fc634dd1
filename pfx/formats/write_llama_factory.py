"""Write LLaMA-Factory preference (ranking) and KTO datasets.

- Conversational pair: ShareGPT ``{"conversations": [{"from", "value"}...],
  "chosen": {"from": "gpt", ...}, "rejected": {...}}``, a system message kept
  as the first turn. Register it with ``"formatting": "sharegpt",
  "ranking": true``.
- Standard pair: Alpaca ``{"instruction", "input": "", "chosen", "rejected"}``
  (``"ranking": true``).
- Conversational unpaired: ``{"messages": [...prompt, answer], "label"}``
  (columns ``messages``, ``kto_tag: label``, role/content tags).
- Standard unpaired: Alpaca ``{"instruction", "input": "", "output", "kto_tag"}``.

LLaMA-Factory answers are one message, so multi-turn answers are rejected.
Other fields (id, scores, meta) are written alongside; LLaMA-Factory reads
only the columns it is told about.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Writer
from pfx.formats.messages import SHAREGPT_TAGS, passthrough, single_answer

PAIR_FIELDS = ("prompt", "chosen", "rejected")
UNPAIRED_FIELDS = ("prompt", "completion", "label")


def sharegpt(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"from": SHAREGPT_TAGS[message["role"]], "value": message["content"]} for message in messages]


def check_prompt(prompt: list[dict[str, Any]]) -> None:
    if not any(message["role"] != "system" for message in prompt):
        raise RecordError("field 'prompt': LLaMA-Factory needs at least one user turn before the answer", "prompt",
                          "empty prompt")
    if prompt[-1]["role"] == "assistant":
        raise RecordError("field 'prompt': the last prompt message is an assistant turn, so LLaMA-Factory cannot place "
                          "the answer after it", "prompt", "prompt ends with an answer")


class LlamaFactoryWriter(Writer):
    name = "llama-factory"
    description = "LLaMA-Factory: ShareGPT or Alpaca ranking pairs, KTO records (messages + label)."
    kinds = ("pair", "unpaired")

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        prompt = record["prompt"]
        if "chosen" in record:
            rest = passthrough(record, PAIR_FIELDS)
            if isinstance(prompt, str):
                if not isinstance(record["chosen"], str) or not isinstance(record["rejected"], str):
                    raise RecordError("record mixes a string prompt with conversational answers; use --style", "prompt",
                                      "mixed styles")
                return [{"instruction": prompt, "input": "", "chosen": record["chosen"], "rejected": record["rejected"],
                         **rest}]
            check_prompt(prompt)
            chosen = single_answer(record["chosen"], "chosen", self.name)
            rejected = single_answer(record["rejected"], "rejected", self.name)
            return [{"conversations": sharegpt(prompt), "chosen": sharegpt([chosen])[0],
                     "rejected": sharegpt([rejected])[0], **rest}]

        rest = passthrough(record, UNPAIRED_FIELDS)
        if isinstance(prompt, str):
            if not isinstance(record["completion"], str):
                raise RecordError("record mixes a string prompt with a conversational completion; use --style",
                                  "prompt", "mixed styles")
            return [{"instruction": prompt, "input": "", "output": record["completion"], "kto_tag": record["label"],
                     **rest}]
        check_prompt(prompt)
        completion = single_answer(record["completion"], "completion", self.name)
        return [{"messages": [*prompt, completion], "label": record["label"], **rest}]


WRITER = LlamaFactoryWriter()
