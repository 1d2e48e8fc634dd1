"""The pfx record model: pair, unpaired, list and prompt records, and their validation.

pfx records are the Hugging Face TRL dataset shapes. An answer or prompt is
either a plain string ("standard") or a conversation, a list of
``{"role": ..., "content": str}`` messages ("conversational"). Fields a command
does not understand pass through unchanged; provenance lives under ``meta``.

| kind      | required                         | optional                                         |
|-----------|----------------------------------|--------------------------------------------------|
| pair      | prompt, chosen, rejected         | score_chosen, score_rejected, confidence, id     |
| unpaired  | prompt, completion, label (bool) | score, id                                        |
| list      | prompt, completions (>= 2)       | scores (same length) or ranks (1 = best), id     |
| prompt    | prompt                           | id (input of generate and of ``--inference``)    |
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypedDict, Union

from pfx.errors import RecordError

ROLES = ("system", "user", "assistant", "tool")

Message = dict[str, Any]
Conversation = list[Message]
Text = Union[str, Conversation]
Kind = Literal["pair", "unpaired", "list", "prompt"]


class PairRecord(TypedDict, total=False):
    prompt: Text
    chosen: Text
    rejected: Text
    score_chosen: float
    score_rejected: float
    confidence: float
    id: Any
    meta: dict[str, Any]


def json_type_name(value: Any) -> str:
    """Name a value's JSON type for error messages ("a string", "an array", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def record_kind(record: dict[str, Any]) -> Kind | None:
    """Return the kind of a record from its fields, or None when it is no pfx record."""
    # One answer field alone marks a broken pair or unpaired record, so validation
    # names the missing field instead of reading the record as a bare prompt.
    if "chosen" in record or "rejected" in record:
        return "pair"
    if "completions" in record:
        return "list"
    if "completion" in record or "label" in record:
        return "unpaired"
    if "prompt" in record:
        return "prompt"
    return None


def is_conversation(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) for m in value)


def check_text(value: Any, field: str, allow_empty_conversation: bool = False) -> None:
    """Raise RecordError unless ``value`` is a string or a valid conversation."""
    if isinstance(value, str):
        return
    if isinstance(value, list):
        if not value and not allow_empty_conversation:
            raise RecordError(f"field '{field}': empty conversation, expected at least one message", field, f"empty {field}")
        for index, message in enumerate(value):
            where = f"{field}[{index}]"
            if not isinstance(message, dict):
                raise RecordError(
                    f"field '{where}': expected a message object with 'role' and 'content', got {json_type_name(message)}",
                    field,
                    f"invalid {field}",
                )
            role = message.get("role")
            if role not in ROLES:
                raise RecordError(
                    f"field '{where}.role': {role!r} is not one of {', '.join(ROLES)}", field, f"invalid role in {field}"
                )
            if not isinstance(message.get("content"), str):
                raise RecordError(
                    f"field '{where}.content': expected a string, got {json_type_name(message.get('content'))}",
                    field,
                    f"invalid {field}",
                )
        return
    if value is None:
        raise RecordError(f"field '{field}' is null, expected a string or a list of messages", field, f"missing {field}")
    raise RecordError(
        f"field '{field}': expected a string or a list of messages, got {json_type_name(value)}", field, f"invalid {field}"
    )


def _require(record: dict[str, Any], fields: tuple[str, ...], kind: str) -> None:
    for field in fields:
        if field not in record:
            raise RecordError(
                f"missing field '{field}' (a {kind} record needs {', '.join(fields)})", field, f"missing {field}"
            )


def _check_number(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        raise RecordError(f"field '{field}': expected a number, got {value!r}", field, f"invalid {field}")


def validate(record: dict[str, Any], kinds: tuple[Kind, ...] | None = None) -> Kind:
    """Check a record against the pfx record model and return its kind.

    ``kinds`` limits which kinds the caller accepts. Raises ``RecordError``
    naming the field, the value and what was expected.
    """
    kind = record_kind(record)
    if kind is None:
        expected = " or ".join(kinds) if kinds else "pair, unpaired, list or prompt"
        raise RecordError(
            f"not a pfx record (expected a {expected} record; fields present: {', '.join(record) or 'none'})",
            None,
            "unknown record shape",
        )
    if kinds is not None and kind not in kinds:
        raise RecordError(f"a {kind} record is not accepted here (expected {' or '.join(kinds)})", None, f"{kind} record")

    if kind == "pair":
        _require(record, ("prompt", "chosen", "rejected"), "pair")
        for field in ("prompt", "chosen", "rejected"):
            check_text(record[field], field, allow_empty_conversation=field == "prompt")
        for field in ("score_chosen", "score_rejected"):
            if record.get(field) is not None:
                _check_number(record[field], field)
        confidence = record.get("confidence")
        if confidence is not None:
            _check_number(confidence, "confidence")
            if not 0.0 <= confidence <= 1.0:
                raise RecordError(f"field 'confidence': {confidence} is outside 0..1", "confidence", "invalid confidence")
    elif kind == "unpaired":
        _require(record, ("prompt", "completion", "label"), "unpaired")
        check_text(record["prompt"], "prompt", allow_empty_conversation=True)
        check_text(record["completion"], "completion")
        if not isinstance(record["label"], bool):
            raise RecordError(f"field 'label': expected true or false, got {record['label']!r}", "label", "invalid label")
    elif kind == "list":
        _require(record, ("prompt", "completions"), "list")
        check_text(record["prompt"], "prompt", allow_empty_conversation=True)
        completions = record["completions"]
        if not isinstance(completions, list) or len(completions) < 2:
            raise RecordError("field 'completions': expected a list of at least 2 answers", "completions", "too few completions")
        for index, completion in enumerate(completions):
            check_text(completion, f"completions[{index}]")
        for field in ("scores", "ranks"):
            values = record.get(field)
            if values is None:
                continue
            if not isinstance(values, list) or len(values) != len(completions):
                raise RecordError(
                    f"field '{field}': expected a list of {len(completions)} numbers, one per completion",
                    field,
                    f"invalid {field}",
                )
            for index, value in enumerate(values):
                if value is not None:
                    _check_number(value, f"{field}[{index}]")
    else:
        check_text(record["prompt"], "prompt", allow_empty_conversation=True)
    return kind


def text_of(value: Text) -> str:
    """Return the plain text of an answer or prompt: the string, or the joined message contents."""
    if isinstance(value, str):
        return value
    return "\n".join(message.get("content", "") for message in value)


def is_empty(value: Text) -> bool:
    """True for an answer with no visible text (an empty string, or only empty messages)."""
    return not text_of(value).strip()


def prompt_key(prompt: Text) -> str:
    """A canonical string for comparing prompts (duplicates, train/test overlap)."""
    if isinstance(prompt, str):
        return prompt.strip()
    return "\x1e".join(f"{m.get('role')}\x1f{str(m.get('content', '')).strip()}" for m in prompt)


def same_answer(first: Text, second: Text) -> bool:
    return first == second
