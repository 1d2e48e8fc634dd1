"""Conversation helpers shared by the readers and writers of ``pfx convert``.

A conversation is a list of ``{"role", "content"}`` messages. These helpers
turn source message shapes (ShareGPT ``from``/``value``, content-part lists)
into that shape, find the prompt boundary of two conversations at whole
messages, and switch a record between the standard (string) and the
conversational style.
"""

from __future__ import annotations

from typing import Any, Callable

from pfx.errors import RecordError, RuntimeFailure
from pfx.records import ROLES, Conversation, Message, Text, check_text
from pfx.records import json_type_name

ANSWER_FIELDS = ("chosen", "rejected", "completion")
TEXT_FIELDS = ("prompt", *ANSWER_FIELDS)

# ShareGPT role tags (LLaMA-Factory's defaults) -> chat roles.
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}
# Chat roles -> ShareGPT role tags, for writing.
# NOTE: "function_call" reads as "assistant" and writes back as "gpt", so that distinction does not round-trip.
SHAREGPT_TAGS = {"system": "system", "user": "human", "assistant": "gpt", "tool": "observation"}


def content_text(content: Any, field: str) -> str:
    """Return the text of a message content: a string, or a list of text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RecordError(
                    f"field '{field}': content part of type {kind!r} is not supported (only text parts)",
                    field,
                    "non-text content",
                )
            # OpenAI names the text "text"; LLaMA-Factory v1 names it "value".
            text = part.get("text", part.get("value"))
            if not isinstance(text, str):
                raise RecordError(f"field '{field}': text part without a string 'text' or 'value'", field, f"invalid {field}")
            texts.append(text)
        return "".join(texts)
    raise RecordError(
        f"field '{field}': expected a string or a list of text parts, got {json_type_name(content)}",
        field,
        f"invalid {field}",
    )


def chat_message(message: Any, field: str) -> Message:
    """Return ``{"role", "content"}`` for a role/content or ShareGPT from/value message."""
    if not isinstance(message, dict):
        raise RecordError(f"field '{field}': expected a message object, got {json_type_name(message)}", field, f"invalid {field}")
    if "from" in message and "role" not in message:
        tag = message["from"]
        if tag not in SHAREGPT_ROLES:
            raise RecordError(
                f"field '{field}.from': {tag!r} is not a known role tag (expected one of {', '.join(SHAREGPT_ROLES)})",
                field,
                f"invalid role in {field}",
            )
        return {"role": SHAREGPT_ROLES[tag], "content": content_text(message.get("value"), f"{field}.value")}
    role = message.get("role")
    if role not in ROLES:
        raise RecordError(f"field '{field}.role': {role!r} is not one of {', '.join(ROLES)}", field, f"invalid role in {field}")
    return {"role": role, "content": content_text(message.get("content"), f"{field}.content")}


def chat_messages(messages: Any, field: str) -> Conversation:
    """Return a source message list as a conversation; raise ``RecordError`` for a bad one."""
    if not isinstance(messages, list):
        raise RecordError(f"field '{field}': expected a list of messages, got {json_type_name(messages)}", field, f"invalid {field}")
    return [chat_message(message, f"{field}[{index}]") for index, message in enumerate(messages)]


def check_system_position(messages: Conversation, field: str) -> None:
    """Reject a system message anywhere but first: its place in the prompt would be guesswork."""
    for index, message in enumerate(messages):
        if message["role"] == "system" and index > 0:
            raise RecordError(
                f"field '{field}[{index}]': a system message is only accepted as the first message",
                field,
                "system message not first",
            )


def split_conversations(chosen: Conversation, rejected: Conversation) -> tuple[Conversation, Conversation, Conversation]:
    """Split two full conversations into (prompt, chosen answer, rejected answer) at whole messages.

    The prompt is the longest run of leading messages both sides share, cut
    back until each answer starts with an assistant message. An answer keeps
    every message after the prompt, so a conversation that diverges in an
    earlier turn keeps all its later turns.
    """
    shared = 0
    limit = min(len(chosen), len(rejected)) - 1
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    while shared > 0 and not (chosen[shared]["role"] == rejected[shared]["role"] == "assistant"):
        shared -= 1
    return chosen[:shared], chosen[shared:], rejected[shared:]


def is_single_exchange(prompt: Text, answers: list[Text]) -> bool:
    """True when the prompt is one user message and each answer one assistant message."""
    if isinstance(prompt, str) or len(prompt) != 1 or prompt[0]["role"] != "user":
        return False
    return all(not isinstance(answer, str) and len(answer) == 1 and answer[0]["role"] == "assistant" for answer in answers)


def to_conversational(record: dict[str, Any]) -> dict[str, Any]:
    """Return the record with a string prompt as one user message and string answers as one assistant message."""
    out = dict(record)
    if isinstance(out.get("prompt"), str):
        out["prompt"] = [{"role": "user", "content": out["prompt"]}] if out["prompt"] else []
    for field in ANSWER_FIELDS:
        if isinstance(out.get(field), str):
            out[field] = [{"role": "assistant", "content": out[field]}]
    if isinstance(out.get("completions"), list):
        out["completions"] = [[{"role": "assistant", "content": c}] if isinstance(c, str) else c for c in out["completions"]]
    return out


Renderer = Callable[[Conversation, bool], str]


def to_standard(record: dict[str, Any], render: Renderer | None) -> dict[str, Any]:
    """Return the record with conversations as strings.

    Without a chat template only a single exchange (one user message, one
    assistant message per answer) becomes strings; anything else raises
    ``RecordError``, because joining turns without a template invents a format.
    With ``render`` (a chat template), the prompt is rendered with the
    generation prompt and each answer is the rendering of prompt + answer
    minus the prompt's rendering.
    """
    prompt = record.get("prompt")
    answer_fields = [field for field in ANSWER_FIELDS if field in record]
    answers = [record[field] for field in answer_fields]
    if isinstance(record.get("completions"), list):
        answers += record["completions"]
    if isinstance(prompt, str) and all(isinstance(answer, str) for answer in answers):
        return record
    if isinstance(prompt, str) or any(isinstance(answer, str) for answer in answers):
        raise RecordError("prompt and answers mix strings and conversations", "prompt", "mixed styles")

    out = dict(record)
    if render is None:
        if not is_single_exchange(prompt, answers):
            raise RecordError(
                "a conversation with a system message or several turns becomes a string only through a chat "
                "template: add --chat-template FILE, or keep --style conversational",
                "prompt",
                "multi-turn needs --chat-template",
            )
        out["prompt"] = prompt[0]["content"]
        for field in answer_fields:
            out[field] = record[field][0]["content"]
        if "completions" in out:
            out["completions"] = [completion[0]["content"] for completion in record["completions"]]
        return out

    prompt_text = render(prompt, True)

    def answer_text(answer: Conversation, field: str) -> str:
        full = render(prompt + answer, False)
        if not full.startswith(prompt_text):
            raise RecordError(
                f"field '{field}': the chat template renders prompt + answer with a different start than the prompt "
                "alone, so the answer cannot be cut out",
                field,
                "template changes the prompt",
            )
        return full[len(prompt_text) :]

    out["prompt"] = prompt_text
    for field in answer_fields:
        out[field] = answer_text(record[field], field)
    if "completions" in out:
        out["completions"] = [answer_text(c, f"completions[{i}]") for i, c in enumerate(record["completions"])]
    return out


def load_chat_template(path: str) -> Renderer:
    """Compile a Jinja chat template file in Jinja's sandbox and return a renderer.

    Raises ``ValueError`` naming FILE:LINE for a template that does not compile.
    The template receives ``messages``, ``add_generation_prompt``, empty
    ``bos_token``/``eos_token`` (there is no tokenizer here) and
    ``raise_exception``, as in transformers' chat templates.
    """
    try:
        from jinja2 import TemplateError, TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise RuntimeFailure("--chat-template needs the jinja2 package: pip install jinja2") from None

    with open(path, encoding="utf-8") as handle:
        source = handle.read()

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    # The same environment settings as transformers uses for tokenizer chat templates.
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    environment.globals["raise_exception"] = raise_exception
    try:
        template = environment.from_string(source)
    except TemplateSyntaxError as error:
        raise ValueError(f"{path}:{error.lineno}: {error.message}") from None

    def render(messages: Conversation, add_generation_prompt: bool) -> str:
        try:
            return template.render(messages=messages, add_generation_prompt=add_generation_prompt, bos_token="",
                                   eos_token="")
        except TemplateError as error:
            raise RecordError(f"chat template failed: {error}", "prompt", "chat template error") from None

    return render


def check_conversation(value: Any, field: str) -> Conversation:
    """Return ``value`` when it is a valid, non-empty conversation; raise ``RecordError`` otherwise."""
    if not isinstance(value, list):
        raise RecordError(f"field '{field}': expected a list of messages, got {json_type_name(value)}", field, f"invalid {field}")
    check_text(value, field)
    return value


def passthrough(record: dict[str, Any], known: tuple[str, ...] | frozenset[str]) -> dict[str, Any]:
    """Return the fields of ``record`` a reader does not interpret, in their order."""
    return {key: value for key, value in record.items() if key not in known}


def single_answer(answer: Any, field: str, target: str) -> Message:
    """Return the one assistant message of a conversational answer; raise ``RecordError`` when there are more."""
    if isinstance(answer, str):
        raise RecordError(
            f"field '{field}': {target} accepts conversations only, got a string; add --style conversational",
            field,
            f"string {field}",
        )
    if len(answer) != 1 or answer[0].get("role") != "assistant":
        roles = ", ".join(str(message.get("role")) for message in answer)
        raise RecordError(
            f"field '{field}': {target} accepts one assistant message per answer, got {len(answer)} message(s) "
            f"({roles}); write --to pfx or trl to keep every turn",
            field,
            f"multi-turn {field}",
        )
    return answer[0]
