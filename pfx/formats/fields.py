"""Field checks and record builders shared by the readers of public feedback datasets.

Each check raises ``RecordError`` naming the field, the value found and what
was expected, so that every reader reports bad records the same way.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

from pfx.errors import RecordError
from pfx.formats import Reader, ReadOptions
from pfx.formats.messages import chat_messages, split_conversations
from pfx.io import InputLine

# The value of ``confidence`` (probability that chosen is better) for a tie.
TIE_CONFIDENCE = 0.5


def shorten(value: Any, limit: int = 80) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require(record: dict[str, Any], name: str, expected: str) -> Any:
    """Return ``record[name]``; raise when the field is missing or null."""
    if name not in record:
        raise RecordError(f"missing field '{name}' (expected {expected})", name, f"missing {name}")
    value = record[name]
    if value is None:
        raise RecordError(f"field '{name}' is null (expected {expected})", name, f"missing {name}")
    return value


def require_text(record: dict[str, Any], name: str) -> str:
    value = require(record, name, "a string")
    if not isinstance(value, str):
        raise RecordError(f"field '{name}': expected a string, got {shorten(value)}", name, f"invalid {name}")
    return value


def require_choice(record: dict[str, Any], name: str, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    value = require(record, name, "one of " + ", ".join(map(repr, choices)))
    # bool is an int in Python, so True would match 1 without this check.
    if isinstance(value, bool) or value not in choices:
        expected = ", ".join(map(repr, choices))
        raise RecordError(f"field '{name}': {shorten(value)} is not one of {expected}", name, f"invalid {name}")
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def optional_number(value: Any, name: str, kind: str | None = None) -> float | int | None:
    """Return a score as a number; None, "" and "N/A" are a missing score, never 0.

    ``name`` is the field's path for the message. ``kind`` (default ``name``)
    names the fault in the summary, so ``completions[3].overall_score`` and
    ``completions[0].overall_score`` count as one reason.
    """
    if value is None or value == "" or value == "N/A":
        return None
    if is_number(value):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if not math.isnan(number):
                return int(number) if number.is_integer() else number
    raise RecordError(f"field '{name}': expected a number or \"N/A\", got {shorten(value)}", name,
                      f"invalid {kind or name}")


def require_conversation(record: dict[str, Any], name: str) -> list[dict[str, str]]:
    """Return a non-empty list of ``{"role", "content"}`` messages."""
    messages = chat_messages(require(record, name, "a list of messages"), name)
    if not messages:
        raise RecordError(f"field '{name}': expected at least one message, got an empty list", name, f"empty {name}")
    return messages


def remaining(record: dict[str, Any], used: Iterable[str]) -> dict[str, Any]:
    """Return the fields of ``record`` a reader did not map, in their order, for ``meta``."""
    used = set(used)
    return {key: value for key, value in record.items() if key not in used}


def split_prompt(first: list[dict[str, str]], second: list[dict[str, str]], names: tuple[str, str]) \
        -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """Split two conversations of one exchange into their shared prompt and the two answers.

    The split is ``pfx.formats.messages.split_conversations``. The prompt is
    the longest run of whole messages both share, and each answer starts at an
    assistant message and keeps every later turn. Raises when nothing is
    shared, because then the two do not answer one prompt.
    """
    prompt, first_answer, second_answer = split_conversations(first, second)
    if not prompt:
        raise RecordError(f"fields '{names[0]}' and '{names[1]}' share no prompt message before their answers",
                          names[0], "no shared prompt")
    return prompt, first_answer, second_answer


def pair(prompt: Any, chosen: Any, rejected: Any, meta: dict[str, Any], tie: bool = False,
         confidence: float | None = None, **fields: Any) -> dict[str, Any]:
    """Build a pair record; ``fields`` with a None value are left out.

    A tie keeps the source's order (first answer as ``chosen``) and is marked by
    ``meta.tie: true`` and ``confidence: 0.5``, because the chance that either
    answer is the better one is even.
    """
    record: dict[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    record.update({key: value for key, value in fields.items() if value is not None})
    if tie:
        confidence = TIE_CONFIDENCE
    if confidence is not None:
        record["confidence"] = confidence
    record["meta"] = {**meta, "tie": True} if tie else meta
    return record


def join_input(instruction: str, extra_input: str) -> str:
    """Return the prompt of an instruction with an optional input text, separated by a blank line."""
    return f"{instruction}\n\n{extra_input}" if extra_input else instruction


# -- options and counts --------------------------------------------------------


# Prefixes of the count names that stand for input rows. "dropped: ..." counts
# rows a reader left out on purpose, which the convert command subtracts when
# it balances rows read against records written. "added: ..." counts rows a
# reader recovered that the input layer did not deliver as records.
# NOTE: convert does not subtract "added:" counts yet, so its summary shows
# each such row once more as "expanded" (or one fewer "merged").
DROPPED = "dropped: "
ADDED = "added: "


def count(options: ReadOptions, name: str, n: int = 1) -> None:
    """Count a named event (a row left out, a cut conversation) for the run summary."""
    if n:
        options.counts[name] += n


def check_choice(option: str, value: str, choices: Iterable[str], reader: str) -> None:
    """Raise click's UsageError (exit 2) for a ``--score``/``--label`` value the reader does not know."""
    choices = tuple(choices)
    if value not in choices:
        import click

        raise click.UsageError(f"--{option} {value!r} is not valid for --from {reader}; expected one of "
                               f"{', '.join(choices)}")


class FeedbackReader(Reader):
    """A reader whose ``--score``/``--label`` values are checked before the first record is read."""

    def check_options(self, options: ReadOptions) -> None:
        """Raise click's UsageError for an option value this format does not support."""

    def convert(self, items: Iterable[InputLine], options: ReadOptions, reject: Any) -> Iterator[dict[str, Any]]:
        self.check_options(options)
        yield from super().convert(items, options, reject)
