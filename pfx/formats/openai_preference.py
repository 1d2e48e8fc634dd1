"""OpenAI preference fine-tuning (DPO) records.

Format: https://developers.openai.com/api/docs/guides/direct-preference-optimization

Shape: ``{"input": {"messages": [...], "tools"?: [...], "parallel_tool_calls"?: bool},
"preferred_output": [assistant message], "non_preferred_output": [assistant message]}``.
The input messages become the conversational prompt and each output list an
answer. Other keys of ``input`` (tools, parallel_tool_calls) are kept under
``meta.openai_input``; other top-level fields pass through.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Reader, ReadOptions
from pfx.formats.messages import chat_messages, check_system_position, passthrough

FIELDS = ("input", "preferred_output", "non_preferred_output")


class OpenAIPreferenceReader(Reader):
    name = "openai-preference"
    description = "OpenAI preference fine-tuning: input.messages, preferred_output, non_preferred_output."
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        return "preferred_output" in record and "non_preferred_output" in record

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        source_input = record.get("input")
        if not isinstance(source_input, dict) or "messages" not in source_input:
            raise RecordError(
                "field 'input': expected an object with 'messages' (the conversation before the answer)",
                "input",
                "missing input.messages",
            )
        prompt = chat_messages(source_input["messages"], "input.messages")
        check_system_position(prompt, "input.messages")
        pair: dict[str, Any] = {"prompt": prompt}
        for source, target in (("preferred_output", "chosen"), ("non_preferred_output", "rejected")):
            if source not in record:
                raise RecordError(f"missing field '{source}'", source, f"missing {source}")
            answer = chat_messages(record[source], source)
            if not answer:
                raise RecordError(f"field '{source}': empty list, expected the assistant message", source, f"empty {target}")
            pair[target] = answer
        pair.update(passthrough(record, FIELDS))
        extra_input = passthrough(source_input, ("messages",))
        if extra_input:
            meta = dict(pair.get("meta") or {})
            meta["openai_input"] = extra_input
            pair["meta"] = meta
        return [pair]


READER = OpenAIPreferenceReader()
