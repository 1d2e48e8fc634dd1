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

LLaMA-Factory answers are one message, so multi-turn answers are rejected,
and so are prompts whose turns do not alternate, which its loader would skip.
Other fields (id, scores, meta) are written alongside. LLaMA-Factory reads
only the columns that its dataset_info.json entry maps.
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
    """Reject a prompt that LLaMA-Factory's ShareGPT loader would skip.

    After an optional system message, its loader expects user (or tool) turns
    at even positions and assistant turns at odd ones, ending on a user turn.
    It logs and skips any other record at training time, so pfx rejects it
    here, where the reason reaches the user.
    """
    turns = prompt[1:] if prompt and prompt[0]["role"] == "system" else prompt
    if not turns:
        raise RecordError("field 'prompt': LLaMA-Factory needs at least one user turn before the answer", "prompt",
                          "empty prompt")
    for index, message in enumerate(turns):
        expected = ("user", "tool") if index % 2 == 0 else ("assistant",)
        if message["role"] not in expected:
            raise RecordError(
                f"field 'prompt': LLaMA-Factory expects user and assistant turns to alternate, but turn {index + 1} "
                f"after the system message is {message['role']!r}; write --to pfx or trl to keep this conversation",
                "prompt",
                "turns do not alternate",
            )
    if turns[-1]["role"] == "assistant":
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
