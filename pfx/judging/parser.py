"""Parse judge replies into a verdict: "A", "B", "tie", or a parse failure with its reason.

Each template names one reply format, and the parser reads only the part of
the reply that format defines: the last non-empty line for ``verdict``, the
last two lines for ``scores``, the whole reply as one JSON object for
``json`` and ``ranking``. A candidate answer quoted earlier in the reply can
therefore never decide the verdict. A reply of any other shape is a parse
failure, kept with its raw text and counted; it is never a vote, a tie or a
position.

Tie encodings differ between tools; ``TIE_TOKENS`` and ``preference_outcome``
map each of them to one tie value.
"""

from __future__ import annotations

import ast
import math
import re
from pfx.records import json_type_name
from dataclasses import dataclass
from typing import Any

A, B, TIE = "A", "B", "tie"

# Every spelling of a tie verdict pfx accepts, compared case-insensitively:
# MT-bench's "[[C]]", the sparse-feedback "equal", and plain words. The
# numeric AlpacaEval tie codes (1.5, and the legacy 0 for identical outputs)
# are read by ``preference_outcome``; a bare "0" is not a tie token because
# TRL's judges use "0" for the first answer.
TIE_TOKENS = frozenset({"tie", "[[c]]", "c", "equal", "draw"})
POSITION_TOKENS = {"a": A, "[[a]]": A, "b": B, "[[b]]": B}

_VERDICT_LINE = re.compile(
    r"^[\s*_#>]*(?:final\s+)?verdict[\s*_]*:[\s*_]*(\[\[[A-Ca-c]\]\])[\s*_.]*$", re.IGNORECASE
)
_SCORE_LINE = re.compile(r"^[\s*_#>]*score\s+of\s+(?:the\s+)?assistant\s+([AB12])[\s*_]*:[\s*_]*([-+]?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?[\s*_.]*$",
                         re.IGNORECASE)
_JSON_FENCE = re.compile(r"^```(?:json|python)?\s*\n(.*)\n```$", re.DOTALL)


@dataclass
class ParsedReply:
    """The verdict read from one judge reply.

    ``winner`` is the winning position ("A" or "B"), "tie", or None when the
    reply could not be parsed; then ``error`` gives the reason. ``scores``
    contains per-position scores for score templates, and ``probability`` the
    probability of position A when it came from token log-probs.
    """

    winner: str | None
    error: str | None = None
    scores: dict[str, float] | None = None
    probability: float | None = None


def failure(reason: str) -> ParsedReply:
    return ParsedReply(None, reason)


def normalize_verdict(token: Any) -> str | None:
    """Return "A", "B" or "tie" for a verdict token (``[[A]]``, ``b``, ``Tie``, ``[[C]]``...), else None."""
    if isinstance(token, bool) or token is None:
        return None
    text = str(token).strip().lower()
    if text in POSITION_TOKENS:
        return POSITION_TOKENS[text]
    if text in TIE_TOKENS:
        return TIE
    return None


def preference_outcome(value: Any) -> float | None:
    """Return an AlpacaEval-style preference as P(second output wins): 0.0, 0.5, 1.0 or a soft value.

    1 means the first output won, 2 the second, and 1.5, the legacy 0 and
    every entry of ``TIE_TOKENS`` mean a tie. A float strictly between 1 and 2
    is a soft preference. None and NaN are missing values (returned as None).
    Raises ValueError for anything else.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        verdict = normalize_verdict(value)
        if verdict == TIE:
            return 0.5
        if verdict is not None:
            return 0.0 if verdict == A else 1.0
        value = float(value)
    if isinstance(value, bool):
        raise ValueError(f"preference {value!r} is not a number")
    number = float(value)
    if number == 0:
        return 0.5
    if not 1.0 <= number <= 2.0:
        raise ValueError(f"preference {value!r} is outside 1..2 (and not the legacy tie 0)")
    return number - 1.0


def win_rate_of_second(preferences: list[Any]) -> tuple[float | None, int, int]:
    """Return (win rate of the second output with ties as 0.5, values counted, missing values)."""
    outcomes = [preference_outcome(value) for value in preferences]
    present = [outcome for outcome in outcomes if outcome is not None]
    missing = len(outcomes) - len(present)
    if not present:
        return None, 0, missing
    return sum(present) / len(present), len(present), missing


# -- reply formats ---------------------------------------------------------------


def pick_higher(first: float, second: float, first_label: str = A, second_label: str = B) -> str:
    """Return the label of the higher of two values, or "tie" when they are equal."""
    if first > second:
        return first_label
    if second > first:
        return second_label
    return TIE


def parse_verdict(text: str) -> ParsedReply:
    """Read the verdict from the last non-empty line, which must be ``Verdict: [[A]]``, ``[[B]]`` or ``[[C]]`` (tie)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return failure("empty reply")
    match = _VERDICT_LINE.match(lines[-1])
    if match is None:
        return failure("the last line is not 'Verdict: [[A]]', 'Verdict: [[B]]' or 'Verdict: [[C]]'")
    return ParsedReply(normalize_verdict(match.group(1)))


def parse_scores(text: str, low: float, high: float) -> ParsedReply:
    """Read ``Score of Assistant A: x`` and ``Score of Assistant B: y`` from the last two non-empty lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return failure("expected two score lines at the end of the reply")
    scores: dict[str, float] = {}
    for line in lines[-2:]:
        match = _SCORE_LINE.match(line)
        if match is None:
            return failure(f"not a score line: {line.strip()[:80]!r}")
        position = {"1": A, "2": B}.get(match.group(1), match.group(1).upper())
        if position in scores:
            return failure(f"two score lines for Assistant {position}")
        value = float(match.group(2))
        if not low <= value <= high:
            return failure(f"score {value:g} for Assistant {position} is outside {low:g}..{high:g}")
        scores[position] = value
    if set(scores) != {A, B}:
        return failure("expected one score line for Assistant A and one for Assistant B")
    return ParsedReply(pick_higher(scores[A], scores[B]), scores=scores)


def parse_json_verdict(text: str, key: str = "winner") -> ParsedReply:
    """Read ``{"winner": "A" | "B" | "tie", ...}``: the whole reply must be this one JSON object."""
    value, error = load_object(text, allow_python=False)
    if error is not None:
        return failure(error)
    if not isinstance(value, dict):
        return failure(f"expected a JSON object, got {json_type_name(value)}")
    if key not in value:
        return failure(f"the JSON object has no {key!r} key (keys: {', '.join(map(str, value)) or 'none'})")
    winner = normalize_verdict(value[key])
    if winner is None:
        return failure(f"{key!r} is {value[key]!r}, expected A, B or tie")
    return ParsedReply(winner)


def parse_ranking(value: Any, labels: dict[str, str]) -> ParsedReply:
    """Read an AlpacaEval ranking: ``{"ordered_models": [{"model", "rank"}, ...]}`` or the bare list.

    ``value`` is the parsed object or its text (JSON, or a Python literal as
    some AlpacaEval files store it). ``labels`` maps each model identifier to
    its position ("A" or "B"). The model with rank 1 wins; two models at rank
    1, an unknown identifier or a missing key is a parse failure.
    """
    if isinstance(value, str):
        value, error = load_object(value, allow_python=True)
        if error is not None:
            return failure(error)
    entries = value.get("ordered_models") if isinstance(value, dict) else value
    if isinstance(value, dict) and entries is None:
        return failure(f"expected an 'ordered_models' key (keys: {', '.join(map(str, value)) or 'none'})")
    if not isinstance(entries, list) or not entries:
        return failure("expected a non-empty list of {'model', 'rank'} entries")
    first: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict) or "model" not in entry or "rank" not in entry:
            return failure(f"ranking entry {entry!r} lacks 'model' or 'rank'")
        if entry["model"] not in labels:
            return failure(f"unknown model identifier {entry['model']!r} (expected {', '.join(labels)})")
        if entry["rank"] == 1:
            first.append(labels[entry["model"]])
    if len(first) != 1:
        return failure(f"expected exactly one model at rank 1, found {len(first)}")
    return ParsedReply(first[0])


def parse_logprob_choice(top_logprobs: list[dict[str, Any]], labels: dict[str, str]) -> ParsedReply:
    """Read a one-token verdict from the first token's top log-probs (the AlpacaEval weighted judge).

    ``labels`` maps tokens to positions, for example ``{"M": "A", "m": "B"}``.
    The result's ``probability`` is P(A) renormalised over the label tokens,
    and its ``scores`` are P(A) and P(B), so that combining several replies
    averages probabilities. The winner is the more probable position, or a
    tie at exactly 0.5.
    """
    mass = {A: 0.0, B: 0.0}
    for entry in top_logprobs:
        position = labels.get(entry.get("token"))
        if position is not None:
            mass[position] += math.exp(entry["logprob"])
    total = mass[A] + mass[B]
    if total == 0:
        return failure(f"none of the tokens {', '.join(labels)} is among the top log-probs")
    probability = mass[A] / total
    scores = {A: probability, B: 1.0 - probability}
    return ParsedReply(pick_higher(probability, 1.0 - probability), scores=scores, probability=probability)


# -- strict object loading -----------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def load_object(text: str, allow_python: bool) -> tuple[Any, str | None]:
    """Parse a whole reply as JSON (or, with ``allow_python``, a Python literal); return (value, error).

    A JSON object with a repeated key is an error: a default JSON parser keeps
    the last value silently. A reply wrapped in one ``` fence is unwrapped;
    any other text around the object is an error.
    """
    import json

    stripped = text.strip()
    fenced = _JSON_FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    if not stripped:
        return None, "empty reply"
    try:
        return json.loads(stripped, object_pairs_hook=_reject_duplicates), None
    except _DuplicateKey as exc:
        return None, f"duplicate key {exc.args[0]!r} in the JSON object"
    except json.JSONDecodeError as exc:
        json_error = f"not a JSON object ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not allow_python:
        return None, json_error
    return _load_python_literal(stripped, json_error)


def _load_python_literal(text: str, json_error: str) -> tuple[Any, str | None]:
    """Parse a Python literal (``ast.literal_eval``: no code runs), rejecting repeated dict keys."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return None, json_error + ", nor a Python literal"
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [key.value for key in node.keys if isinstance(key, ast.Constant)]
            repeated = {key for key in keys if keys.count(key) > 1}
            if repeated:
                return None, f"duplicate key {sorted(map(str, repeated))[0]!r} in the Python literal"
    try:
        return ast.literal_eval(tree), None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, json_error + ", nor a Python literal"
