"""Write OpenAI preference fine-tuning (DPO) records.

Each pair becomes ``{"input": {"messages": prompt}, "preferred_output":
[chosen], "non_preferred_output": [rejected]}``. The format stores
conversations with one assistant message per answer: string records need
``--style conversational``, and multi-turn answers are rejected. Keys kept
under ``meta.openai_input`` (tools, parallel_tool_calls) return to ``input``.
Other fields (id, scores, meta) have no place in this format; they are left
out and counted.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Writer
from pfx.formats.messages import single_answer

# NOTE: extra top-level keys are left out on the assumption that OpenAI's file validation rejects them;
# that was not checked against the API.
KEPT_FIELDS = ("prompt", "chosen", "rejected")


class OpenAIPreferenceWriter(Writer):
    name = "openai-preference"
    description = "OpenAI preference fine-tuning: input.messages, preferred_output, non_preferred_output."
    kinds = ("pair",)

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        prompt = record["prompt"]
        if isinstance(prompt, str):
            raise RecordError(
                "field 'prompt': openai-preference accepts conversations only, got a string; add --style conversational",
                "prompt",
                "string prompt",
            )
        if not prompt:
            raise RecordError("field 'prompt': openai-preference needs at least one input message", "prompt", "empty prompt")
        source_input = dict((record.get("meta") or {}).get("openai_input") or {})
        return [{
            "input": {"messages": prompt, **source_input},
            "preferred_output": [single_answer(record["chosen"], "chosen", self.name)],
            "non_preferred_output": [single_answer(record["rejected"], "rejected", self.name)],
        }]

    def dropped_fields(self, record: dict[str, Any]) -> list[str]:
        dropped = [key for key in record if key not in KEPT_FIELDS and key != "meta"]
        meta = record.get("meta") or {}
        dropped += [f"meta.{key}" for key in meta if key != "openai_input"]
        return dropped


WRITER = OpenAIPreferenceWriter()
