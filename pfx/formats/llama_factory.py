"""LLaMA-Factory preference and KTO datasets.

Shapes read (LLaMA-Factory's default column names):

- ShareGPT pair: ``conversations`` (or ``messages``) contains the prompt turns,
  ``chosen`` and ``rejected`` one message each (``from``/``value`` or
  ``role``/``content``); an optional ``system`` column.
- Alpaca pair: ``instruction``, optional ``input`` (the prompt is
  ``instruction + "\\n" + input``), ``chosen``, ``rejected`` strings, optional
  ``system`` and ``history`` (``[[query, answer], ...]``).
- KTO: ``messages`` or ``conversations`` whose last message is the judged
  answer, with ``label`` or ``kto_tag``; or Alpaca ``instruction``/``input``/
  ``output`` with ``kto_tag``. The tag must be a JSON boolean, as LLaMA-Factory
  checks: the string ``"true"`` is rejected rather than read as a label.
- v1 pair: ``chosen_messages`` and ``rejected_messages``, whole conversations
  with content-part lists; the prompt is their shared leading messages.

A system message is accepted as the first message (or from the ``system``
column) and kept as the first prompt message; a system message later in the
conversation is rejected with a reason. Records without a system message or
history read as standard strings where the source has strings (Alpaca), and
as conversations otherwise.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Reader, ReadOptions
from pfx.formats.messages import chat_message, chat_messages, check_system_position, passthrough, split_conversations
from pfx.records import json_type_name

KNOWN_FIELDS = frozenset(
    {"conversations", "messages", "chosen", "rejected", "system", "instruction", "input", "output", "history",
     "label", "kto_tag", "chosen_messages", "rejected_messages"}
)


def _conversation_field(record: dict[str, Any]) -> str | None:
    for field in ("conversations", "messages"):
        if isinstance(record.get(field), list):
            return field
    return None


def _with_system(record: dict[str, Any], messages: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """Put the ``system`` column first in the prompt; reject a second system message."""
    check_system_position(messages, field)
    system = record.get("system")
    if system in (None, ""):
        return messages
    if not isinstance(system, str):
        raise RecordError(f"field 'system': expected a string, got {json_type_name(system)}", "system", "invalid system")
    if messages and messages[0]["role"] == "system":
        raise RecordError(
            f"record has both a 'system' column and a system message in '{field}'; keep one",
            "system",
            "two system messages",
        )
    return [{"role": "system", "content": system}, *messages]


def _answer_message(record: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = record.get(field)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    message = chat_message(value, field)
    if message["role"] != "assistant":
        raise RecordError(
            f"field '{field}': expected an assistant (gpt) message, got role {message['role']!r}",
            field,
            f"invalid role in {field}",
        )
    return [message]


def _alpaca_prompt(record: dict[str, Any]) -> str:
    instruction = record.get("instruction")
    query = record.get("input") or ""
    if not isinstance(instruction, str) or not isinstance(query, str):
        raise RecordError("fields 'instruction' and 'input': expected strings", "instruction", "invalid instruction")
    return f"{instruction}\n{query}" if query else instruction


def _alpaca_history(record: dict[str, Any]) -> list[dict[str, Any]]:
    history = record.get("history") or []
    if not isinstance(history, list):
        raise RecordError("field 'history': expected a list of [query, answer] pairs", "history", "invalid history")
    messages = []
    for index, turn in enumerate(history):
        if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(text, str) for text in turn)):
            raise RecordError(f"field 'history[{index}]': expected [query, answer] strings", "history", "invalid history")
        messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    return messages


def _alpaca_pair(record: dict[str, Any], answers: tuple[str, ...]) -> dict[str, Any]:
    """Return the prompt and answers of an Alpaca record: strings, or messages when it has a system or history."""
    prompt = _alpaca_prompt(record)
    for field in answers:
        if not isinstance(record.get(field), str):
            raise RecordError(f"field '{field}': expected a string, got {json_type_name(record.get(field))}", field,
                              f"invalid {field}")
    if not record.get("system") and not record.get("history"):
        return {"prompt": prompt, **{field: record[field] for field in answers}}
    messages = _with_system(record, [*_alpaca_history(record), {"role": "user", "content": prompt}], "history")
    return {"prompt": messages, **{field: [{"role": "assistant", "content": record[field]}] for field in answers}}


def _kto_label(record: dict[str, Any]) -> bool:
    field = "kto_tag" if "kto_tag" in record else "label"
    label = record[field]
    if not isinstance(label, bool):
        raise RecordError(
            f"field '{field}': expected true or false (a JSON boolean), got {label!r}",
            field,
            f"invalid {field}",
        )
    return label


class LlamaFactoryReader(Reader):
    name = "llama-factory"
    description = "LLaMA-Factory: ShareGPT or Alpaca preference pairs, KTO records, v1 chosen_messages."
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        if "chosen_messages" in record and "rejected_messages" in record:
            return True
        conversation = _conversation_field(record)
        if conversation and ("label" in record or "kto_tag" in record):
            return True
        if conversation and isinstance(record.get("chosen"), dict) and isinstance(record.get("rejected"), dict):
            return True
        if conversation == "conversations" and "chosen" in record and "rejected" in record:
            return True
        if "instruction" in record and isinstance(record.get("chosen"), str) and isinstance(record.get("rejected"), str):
            return True
        return "instruction" in record and "output" in record and "kto_tag" in record

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        rest = passthrough(record, KNOWN_FIELDS)
        conversation = _conversation_field(record)

        if "chosen_messages" in record or "rejected_messages" in record:
            chosen = chat_messages(record.get("chosen_messages"), "chosen_messages")
            rejected = chat_messages(record.get("rejected_messages"), "rejected_messages")
            check_system_position(chosen, "chosen_messages")
            prompt, chosen_answer, rejected_answer = split_conversations(chosen, rejected)
            return [{"prompt": prompt, "chosen": chosen_answer, "rejected": rejected_answer, **rest}]

        if "kto_tag" in record or ("label" in record and "chosen" not in record):
            label = _kto_label(record)
            if conversation is None:
                unpaired = _alpaca_pair(record, ("output",))
                unpaired["completion"] = unpaired.pop("output")
                return [{**unpaired, "label": label, **rest}]
            messages = _with_system(record, chat_messages(record[conversation], conversation), conversation)
            if not messages or messages[-1]["role"] != "assistant":
                raise RecordError(
                    f"field '{conversation}': a KTO record must end with the judged assistant message",
                    conversation,
                    "no judged answer",
                )
            return [{"prompt": messages[:-1], "completion": messages[-1:], "label": label, **rest}]

        if conversation is not None:
            prompt = _with_system(record, chat_messages(record[conversation], conversation), conversation)
            if prompt and prompt[-1]["role"] == "assistant":
                raise RecordError(
                    f"field '{conversation}': the prompt ends with an assistant message, but the answers follow it",
                    conversation,
                    "prompt ends with an answer",
                )
            return [{"prompt": prompt, "chosen": _answer_message(record, "chosen"),
                     "rejected": _answer_message(record, "rejected"), **rest}]

        if "instruction" in record:
            return [{**_alpaca_pair(record, ("chosen", "rejected")), **rest}]

        raise RecordError(
            "not a LLaMA-Factory preference record (expected conversations + chosen + rejected, instruction + chosen + "
            "rejected, messages + label, or chosen_messages + rejected_messages)",
            None,
            "unknown record shape",
        )


READER = LlamaFactoryReader()
