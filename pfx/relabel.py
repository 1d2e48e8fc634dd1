"""Reward-augmented relabeling of scored preference pairs.

Method: Zhang et al., "Reward-Augmented Data Enhances Direct Preference
Alignment of LLMs" (ICML 2025, arXiv 2410.08067). A pair (x, y_w, y_l) with
scores (s_w, s_l) becomes two goal-conditioned pairs:

  goal s_w: chosen y_w, rejected y_l   (labels kept)
  goal s_l: chosen y_l, rejected y_w   (labels swapped)

The goal is stated in the prompt with the authors' template, either as a
system message or prepended to the first user turn. Scores keep their source
scale in the output records; only the goal text uses the template's scale.
"""

from __future__ import annotations

import functools
import os
import random
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import orjson

from pfx.errors import RecordError
from pfx.records import Text, text_of, validate
from pfx.transforms import PairOptions, list_to_pairs

PLACEMENTS = ("system", "user")
ORDERS = ("interleave", "grouped")
TEMPLATE_PATH = os.path.join(os.path.dirname(__file__), "templates", "relabel_reward.txt")
TEMPLATE_FIELDS = ("{low}", "{high}", "{goals}", "{score}")
_PLACEHOLDER = re.compile("|".join(re.escape(name) for name in TEMPLATE_FIELDS))
# Rescaled goals are rounded so that 1 + (3 - 1) * 9 / 4 prints as 5.5, not 5.499999999999999.
RESCALE_DECIMALS = 6
# Shorter template openings are too common to mark a goal text already in the prompt.
MIN_OPENING_CHARS = 20
# The goal text ends with a blank line when it is prepended to a user turn, as the authors do.
USER_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Scale:
    """A closed score range such as 1..10."""

    low: float
    high: float

    @classmethod
    def parse(cls, text: str) -> "Scale":
        """Parse ``LOW:HIGH`` (for example ``1:10``), raising ValueError when it is invalid."""
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not LOW:HIGH (for example 1:10)")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"{text!r} is not LOW:HIGH with two numbers (for example 1:10)") from None
        if not low < high:
            raise ValueError(f"{text!r}: LOW must be below HIGH")
        return cls(low, high)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{format_score(self.low)}..{format_score(self.high)}"


@dataclass
class RelabelOptions:
    """Settings of one relabel-reward run (see ``pfx relabel-reward --help``)."""

    template: str
    placement: str = "system"
    scale: Scale | None = None  # from --scale, else each record's meta.score_scale
    rescale: Scale | None = None  # the template's scale when scores are mapped onto it
    attributes: tuple[str, ...] = ()
    pairing: PairOptions = field(default_factory=PairOptions)  # --pairs, --min-margin, --seed, --ties
    goal: float | None = None  # --inference goal on the template's scale (None: the top of that scale)


@dataclass
class Relabeled:
    """The goal-conditioned records made from one input record, and what happened on the way."""

    records: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    pairs: int = 0  # scored pairs seen (after list expansion)
    ties_dropped: int = 0
    ties_kept: int = 0
    below_margin: int = 0
    reversed_scores: int = 0  # pairs whose rejected answer has the higher score
    expanded_lists: int = 0
    lists_without_pairs: int = 0  # every candidate pair below --min-margin
    scale_overridden: bool = False
    merged_system: int = 0


# -- template -----------------------------------------------------------------


def load_template(path: str | None) -> str:
    """Read a goal template (the authors' wording when ``path`` is None), without its final newline."""
    with open(path or TEMPLATE_PATH, encoding="utf-8") as handle:
        text = handle.read()
    return text[:-1] if text.endswith("\n") else text


def check_template(template: str, attributes: tuple[str, ...]) -> None:
    """Raise ValueError when a template cannot state the goal it would be given."""
    if "{goals}" not in template and "{score}" not in template:
        raise ValueError("the template has neither {goals} nor {score}, so it cannot state the goal")
    if attributes and "{goals}" not in template:
        raise ValueError("--attributes needs a template with {goals}, which becomes one line per attribute, "
                         "because {score} contains a single value")


def format_score(value: float) -> str:
    """Format a score as the authors do: whole numbers without a decimal point (7, not 7.0), others as is (7.5)."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def attribute_label(name: str) -> str:
    """Return the label of an attribute's goal line: ``instruction_following`` -> ``Instruction following``."""
    # NOTE: the authors' repository has no multi-attribute template, so the line
    # "NAME score: VALUE." copies the form of their single "Overall score" line.
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def goal_text(template: str, goals: dict[str, float], scale: Scale) -> str:
    """Fill the template: one ``NAME score: VALUE.`` line per goal under {goals}, the single value under {score}.

    With the default template, the single goal ``{"overall": 7}`` on the scale
    1..10 gives the authors' text word for word.
    """
    return _goal_text(template, tuple(goals.items()), scale)


# Goals repeat (a rating scale has few values), so each distinct text is built once.
@functools.lru_cache(maxsize=4096)
def _goal_text(template: str, goals: tuple[tuple[str, float], ...], scale: Scale) -> str:
    lines = "\n".join(f"{attribute_label(name)} score: {format_score(value)}." for name, value in goals)
    values = {
        "{low}": format_score(scale.low),
        "{high}": format_score(scale.high),
        "{goals}": lines,
        "{score}": format_score(goals[0][1]),
    }
    # One pass, so braces inside a filled value are never read as placeholders.
    return _PLACEHOLDER.sub(lambda match: values[match.group(0)], template)


# -- placement ----------------------------------------------------------------


def check_no_goal(record: dict[str, Any], template: str) -> None:
    """Raise ``RecordError`` when a record already carries a goal, so relabeling twice cannot stack two goals."""
    meta = record.get("meta")
    already = isinstance(meta, dict) and "relabel_reward" in meta
    # The template's fixed opening (the authors' first sentence) marks a goal text that lost its meta.
    opening = template.split("{", 1)[0].strip()
    if not already and len(opening) >= MIN_OPENING_CHARS:
        already = opening in text_of(record.get("prompt") or "")
    if already:
        raise RecordError(
            "the prompt already contains a goal text (meta.relabel_reward or the template's opening), "
            "so relabel-reward would add a second one; use the records from before relabeling",
            "prompt",
            "goal already in prompt",
        )


def add_goal(prompt: Text, text: str, placement: str) -> tuple[Text, bool]:
    """Return the prompt with the goal text placed, and whether it went into an existing system message.

    A plain-string prompt gets ``text + "\\n\\n"`` in front under both
    placements, because its start is where a system message and the first user
    turn both begin, and pfx never turns a string prompt into a conversation.
    """
    if isinstance(prompt, str):
        return text + USER_SEPARATOR + prompt, False
    messages = [dict(message) for message in prompt]
    if placement == "system":
        if messages and messages[0].get("role") == "system":
            # Most chat templates accept one system message, at index 0 only.
            messages[0]["content"] = text + USER_SEPARATOR + messages[0]["content"]
            return messages, True
        return [{"role": "system", "content": text}, *messages], False
    # The authors' script for this placement prepends to the first message of chosen and of
    # rejected, so its swapped half keeps the original labels. pfx swaps under both placements.
    for message in messages:
        if message.get("role") == "user":
            message["content"] = text + USER_SEPARATOR + message["content"]
            return messages, False
    raise RecordError(
        "field 'prompt': --placement user needs a user message in the prompt, found none "
        "(use --placement system for this data)",
        "prompt",
        "no user turn",
    )


# -- scales and scores --------------------------------------------------------


def record_scale(record: dict[str, Any], options: RelabelOptions) -> tuple[Scale, bool]:
    """Return the source scale of a record's scores, and whether --scale overrode a different meta.score_scale."""
    meta = record.get("meta")
    declared = meta.get("score_scale") if isinstance(meta, dict) else None
    meta_scale = None
    if declared is not None:
        if (
            not isinstance(declared, list)
            or len(declared) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in declared)
            or not declared[0] < declared[1]
        ):
            raise RecordError(
                f"field 'meta.score_scale': expected [LOW, HIGH] with LOW < HIGH, got {declared!r}",
                "meta.score_scale",
                "invalid meta.score_scale",
            )
        meta_scale = Scale(float(declared[0]), float(declared[1]))
    if options.scale is not None:
        return options.scale, meta_scale is not None and meta_scale != options.scale
    if meta_scale is not None:
        return meta_scale, False
    raise RecordError(
        "the score scale is unknown: the goal template states a scale, so give it with --scale LOW:HIGH "
        "(for example --scale 1:10) or in the record as meta.score_scale [LOW, HIGH]",
        "meta.score_scale",
        "unknown score scale",
    )


def template_scale(source: Scale | None, options: RelabelOptions) -> Scale:
    """Return the scale the goal text states: --rescale when given, else the source scale."""
    if options.rescale is not None:
        return options.rescale
    assert source is not None
    return source


def to_template_scale(value: float, source: Scale, options: RelabelOptions) -> float:
    """Map a source score linearly onto the template's scale (identity without --rescale)."""
    if options.rescale is None:
        return value
    target = options.rescale
    mapped = target.low + (value - source.low) * (target.high - target.low) / (source.high - source.low)
    return round(mapped, RESCALE_DECIMALS)


def _number(value: Any, name: str) -> float:
    if value is None:
        raise RecordError(f"missing field '{name}': relabel-reward needs a score for both answers", name, f"missing {name}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"field '{name}': expected a number, got {value!r}", name, f"invalid {name}")
    return value


def side_scores(record: dict[str, Any], side: str, options: RelabelOptions) -> dict[str, float]:
    """Return the goal scores of one side (``chosen``/``rejected``): ``{"overall": s}`` or one per attribute."""
    if not options.attributes:
        name = f"score_{side}"
        return {"overall": _number(record.get(name), name)}
    name = f"attribute_scores_{side}"
    values = record.get(name)
    if not isinstance(values, dict):
        raise RecordError(
            f"missing field '{name}': --attributes needs an object of per-attribute scores "
            f"such as {{\"{options.attributes[0]}\": 4}} for both answers",
            name,
            f"missing {name}",
        )
    return {attribute: _number(values.get(attribute), f"{name}.{attribute}") for attribute in options.attributes}


def _check_in_scale(scores: dict[str, float], side: str, scale: Scale) -> None:
    for name, value in scores.items():
        if not scale.contains(value):
            where = f"score_{side}" if name == "overall" else f"attribute_scores_{side}.{name}"
            raise RecordError(
                f"field '{where}': {format_score(value)} is outside the score scale {scale}. "
                "Fix the scale (--scale or meta.score_scale) or the score",
                where,
                "score outside scale",
            )


# -- relabeling ---------------------------------------------------------------


def scored_pairs(record: dict[str, Any], options: RelabelOptions, rng: random.Random) -> tuple[list[dict[str, Any]], int]:
    """Return the scored pairs of a pair or list record, and the ties ``list_to_pairs`` dropped."""
    kind = validate(record, kinds=("pair", "list"))
    if kind == "pair":
        return [record], 0
    if options.attributes:
        raise RecordError(
            "--attributes reads attribute_scores_chosen and attribute_scores_rejected of pair records, "
            "so expand list records to pairs first (pfx convert --pairs ...)",
            "completions",
            "list record with --attributes",
        )
    if record.get("scores") is None:
        raise RecordError(
            "missing field 'scores': relabel-reward conditions on score values, and ranks have none",
            "scores",
            "missing scores",
        )
    pairing = options.pairing
    return list_to_pairs(record, strategy=pairing.strategy, min_margin=pairing.min_margin, rng=rng, ties=pairing.ties)


def _with_fields(record: dict[str, Any], replacements: dict[str, Any]) -> dict[str, Any]:
    """Copy a record, replacing some fields in place and appending new ones, so field order is kept."""
    out = {key: replacements.get(key, value) for key, value in record.items()}
    for key, value in replacements.items():
        out.setdefault(key, value)
    return out


def _goal_record(
    pair: dict[str, Any], goals: dict[str, float], swapped: bool, scale: Scale, options: RelabelOptions
) -> tuple[dict[str, Any], bool]:
    prompt, merged = add_goal(pair["prompt"], goal_text(options.template, goals, scale), options.placement)
    meta = dict(pair.get("meta") or {})
    meta["relabel_reward"] = {"goal": goals if options.attributes else goals["overall"], "swapped": swapped}
    replacements: dict[str, Any] = {"prompt": prompt, "meta": meta}
    if swapped:
        for first, second in (("chosen", "rejected"), ("score_chosen", "score_rejected"),
                              ("attribute_scores_chosen", "attribute_scores_rejected")):
            if first in pair or second in pair:
                replacements[first], replacements[second] = pair.get(second), pair.get(first)
    return _with_fields(pair, replacements), merged


def relabel_record(record: dict[str, Any], options: RelabelOptions, rng: random.Random) -> Relabeled:
    """Turn one pair or scored list record into goal-conditioned record pairs (kept labels, swapped labels).

    Raises ``RecordError`` for a record without scores, without a known scale,
    or with a score outside its scale.
    """
    result = Relabeled()
    pairs, result.ties_dropped = scored_pairs(record, options, rng)
    check_no_goal(record, options.template)
    if "completions" in record:
        result.expanded_lists = 1
    result.pairs = len(pairs) + result.ties_dropped
    if not pairs:
        result.lists_without_pairs = int(result.expanded_lists and not result.ties_dropped)
        return result
    # Missing scores are reported before an unknown scale: they are the more basic fault.
    scored = [(pair, side_scores(pair, "chosen", options), side_scores(pair, "rejected", options)) for pair in pairs]
    source, result.scale_overridden = record_scale(record, options)
    scale = template_scale(source, options)
    for pair, chosen, rejected in scored:
        _check_in_scale(chosen, "chosen", source)
        _check_in_scale(rejected, "rejected", source)
        if chosen == rejected or pair["chosen"] == pair["rejected"]:
            # Equal goals give two records with one prompt and opposite labels.
            if options.pairing.ties == "drop":
                result.ties_dropped += 1
                continue
            result.ties_kept += 1
        elif not options.attributes and abs(chosen["overall"] - rejected["overall"]) < options.pairing.min_margin:
            result.below_margin += 1
            continue
        if not options.attributes and rejected["overall"] > chosen["overall"]:
            # Kept: each goal still names the score of the answer it prefers.
            result.reversed_scores += 1
        kept, merged_kept = _goal_record(pair, _mapped(chosen, source, options), False, scale, options)
        swapped, merged_swapped = _goal_record(pair, _mapped(rejected, source, options), True, scale, options)
        result.merged_system += merged_kept + merged_swapped
        result.records.append((kept, swapped))
    return result


def _mapped(scores: dict[str, float], source: Scale, options: RelabelOptions) -> dict[str, float]:
    return {name: to_template_scale(value, source, options) for name, value in scores.items()}


def inference_record(record: dict[str, Any], options: RelabelOptions) -> tuple[dict[str, Any], bool]:
    """Rewrite a record's prompt with the goal text at ``options.goal`` (default: the top of the template's scale).

    The text and placement are the ones training used, so generation and
    evaluation see the prompt the policy was trained on.
    """
    validate(record)
    check_no_goal(record, options.template)
    if options.rescale is not None:
        scale = options.rescale
    else:
        scale, _ = record_scale(record, options)
    goal = scale.high if options.goal is None else options.goal
    if not scale.contains(goal):
        raise RecordError(f"--goal {format_score(goal)} is outside the template's scale {scale}", "meta.score_scale",
                          "goal outside scale")
    names = options.attributes or ("overall",)
    prompt, merged = add_goal(record["prompt"], goal_text(options.template, dict.fromkeys(names, goal), scale),
                              options.placement)
    return _with_fields(record, {"prompt": prompt}), merged


# -- output order -------------------------------------------------------------


def interleave(pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]], rng: random.Random) -> Iterator[dict[str, Any]]:
    """Yield both records of each pair next to each other, the kept or the swapped one first by a seeded coin flip.

    A trainer that reads in order then never meets a long run of swapped records.
    """
    for kept, swapped in pairs:
        if rng.random() < 0.5:
            yield kept
            yield swapped
        else:
            yield swapped
            yield kept


def grouped(pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Yield every kept-label record, then every swapped one (the authors' order).

    The swapped half waits in a temporary file, so memory does not grow with
    the input. A trainer that reads this output in order must shuffle it.
    """
    with tempfile.TemporaryFile() as spool:
        for kept, swapped in pairs:
            spool.write(orjson.dumps(swapped) + b"\n")
            yield kept
        spool.seek(0)
        for line in spool:
            yield orjson.loads(line)
