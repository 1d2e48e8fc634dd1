"""Judge pair and list records: plan the requests, read the replies, build the ``judge`` field.

A pair is one comparison, chosen (first) against rejected (second). A list
record is judged pair by pair: every two completions i < j form one
comparison, i first. Each comparison is asked in one or both orders and
``samples`` times per order; see ``pfx.judging.aggregate`` for how the
replies combine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pfx.backends import Completion, CompletionRequest, RequestRejected
from pfx.errors import RecordError
from pfx.judging.aggregate import LOSE, WIN, Judgment, Sample, compare, judge_samples, swap_order, verdict_entry
from pfx.judging.parser import TIE
from pfx.judging.split import aligned_parts, interleave
from pfx.judging.templates import Template
from pfx.records import Text, text_of
from pfx.transforms import list_scores

ORDER_MODES = ("both", "one", "random")

# Where converters put the model that wrote each answer: pairs by side, lists by position.
PAIR_MODEL_FIELDS = (("model_chosen", "model_rejected"), ("generator_chosen", "generator_rejected"))
LIST_MODELS_FIELD = "models"


@dataclass
class JudgeSettings:
    template: Template
    model: str
    orders: str = "both"
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    reference_field: str = "reference"


@dataclass
class Comparison:
    """Two answers of one record to compare, and the requests that ask for the verdicts."""

    first: Text
    second: Text
    positions: tuple[int, int] | None  # completion indices in a list record; None for a pair
    slots: list[tuple[str, int]] = field(default_factory=list)  # (order, sample) per request
    requests: list[CompletionRequest] = field(default_factory=list)


def render_question(prompt: Text) -> str:
    """Return a prompt as the question text of a judge template; a conversation becomes labelled turns."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"[{message['role']}]\n{message['content']}" for message in prompt)


def _orders(settings: JudgeSettings, record: dict[str, Any], positions: tuple[int, int] | None) -> list[str]:
    if settings.orders == "both":
        return ["AB", "BA"]
    if settings.orders == "one":
        return ["AB"]
    # Seeded by the record content, so the choice does not depend on sharding or input order.
    rng = random.Random(f"{settings.seed}\x1f{text_of(record['prompt'])}\x1f{positions}")
    return [rng.choice(["AB", "BA"])]


def plan(record: dict[str, Any], kind: str, settings: JudgeSettings) -> list[Comparison]:
    """Return the comparisons of a pair or list record with their requests. Raises ``RecordError``."""
    reference = None
    if settings.template.needs_reference:
        if settings.reference_field not in record or record[settings.reference_field] is None:
            raise RecordError(
                f"missing field '{settings.reference_field}': template {settings.template.name} compares the answers "
                f"with a reference answer (set the field name with --reference-field)",
                settings.reference_field,
                f"missing {settings.reference_field}",
            )
        reference = text_of(record[settings.reference_field])

    if kind == "pair":
        comparisons = [Comparison(record["chosen"], record["rejected"], None)]
    else:
        completions = record["completions"]
        comparisons = [
            Comparison(completions[i], completions[j], (i, j))
            for i in range(len(completions))
            for j in range(i + 1, len(completions))
        ]

    question = render_question(record["prompt"])
    for comparison in comparisons:
        first, second = text_of(comparison.first), text_of(comparison.second)
        if first == second:
            # Identical answers are a tie; asking a judge would only measure its position bias.
            continue
        for order in _orders(settings, record, comparison.positions):
            answer_a, answer_b = (first, second) if order == "AB" else (second, first)
            _add_requests(comparison, order, settings.template.render(question, answer_a, answer_b, reference),
                          settings, settings.template)
    return comparisons


def _add_requests(comparison: Comparison, order: str, messages: list[dict[str, str]], settings: JudgeSettings,
                  template: Template) -> None:
    for sample in range(settings.samples):
        comparison.slots.append((order, sample))
        comparison.requests.append(CompletionRequest(
            prompt=messages,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
            sample=sample,
            top_logprobs=template.top_logprobs,
            allow_truncation=False,
        ))


def plan_split(record: dict[str, Any], comparison: Comparison, settings: JudgeSettings, template: Template,
               parts: int) -> Comparison | None:
    """Return the split-and-merge follow-up of a comparison in both orders, or None when an answer has one sentence.

    Raises ``RecordError`` when the template needs a reference answer the record lacks.
    """
    if template.needs_reference and record.get(settings.reference_field) is None:
        raise RecordError(f"missing field '{settings.reference_field}': split template {template.name} shows a "
                          f"reference answer (set the field name with --reference-field)",
                          settings.reference_field, f"missing {settings.reference_field}")
    first, second = text_of(comparison.first), text_of(comparison.second)
    aligned = aligned_parts(first, second, parts)
    if aligned is None:
        return None
    parts_first, parts_second = aligned
    question = render_question(record["prompt"])
    reference = text_of(record[settings.reference_field]) if template.needs_reference else None
    follow_up = Comparison(comparison.first, comparison.second, comparison.positions)
    for order in ("AB", "BA"):
        segments = interleave(parts_first, parts_second) if order == "AB" else interleave(parts_second, parts_first)
        _add_requests(follow_up, order, template.render(question, "", "", reference, segments), settings, template)
    return follow_up


def read_replies(comparison: Comparison, results: list[Completion | RequestRejected], template: Template) -> Judgment:
    """Parse the replies of one comparison and combine them. Raises ``RecordError`` for a rejected request.

    A comparison without requests (two identical answers) is a tie.
    """
    if not comparison.requests:
        return Judgment(TIE, None, None, [])
    samples = []
    for (order, _), result in zip(comparison.slots, results):
        if isinstance(result, RequestRejected):
            raise RecordError(result.reason, result.field, "request rejected")
        samples.append(Sample(order, result.text, template.parse(result.text, result.logprobs)))
    return judge_samples(samples)


def _judgment_fields(judgment: Judgment, winners: dict[str | None, Any]) -> dict[str, Any]:
    """Return verdicts, winner, consistent, entropy and any split-and-merge follow-up; ``winners`` names each outcome."""
    fields: dict[str, Any] = {
        "verdicts": [verdict_entry(sample) for sample in judgment.samples],
        "winner": winners[judgment.outcome],
        "consistent": judgment.consistent,
    }
    if judgment.entropy is not None:
        fields["entropy"] = round(judgment.entropy, 6)
    if judgment.split is not None:
        split = judgment.split
        fields["split_merge"] = {
            "verdicts": [verdict_entry(sample) for sample in split.samples],
            "winner": winners[split.outcome],
            "consistent": split.consistent,
        }
    return fields


def judge_field(judgment: Judgment, settings: JudgeSettings) -> dict[str, Any]:
    """Return the ``judge`` object of a pair: verdicts, winner (chosen, rejected, tie or null), consistency, entropy."""
    winners = {WIN: "chosen", LOSE: "rejected", TIE: TIE, None: None}
    return {"model": settings.model, "template": settings.template.name, **_judgment_fields(judgment, winners)}


def comparison_field(judgment: Judgment, positions: tuple[int, int]) -> dict[str, Any]:
    """Return one entry of a list record's ``judge.comparisons``; ``winner`` is a completion index or tie."""
    winners = {WIN: positions[0], LOSE: positions[1], TIE: TIE, None: None}
    return {"pair": list(positions), **_judgment_fields(judgment, winners)}


def relabel_pair(record: dict[str, Any]) -> dict[str, Any]:
    """Return a judged pair with the judge's winner as chosen: swaps answers, scores and verdict orders when needed.

    After a swap, ``judge.winner`` is "chosen", each verdict's order is
    relabelled (AB <-> BA) so that A still means the output record's chosen
    answer, ``confidence`` becomes 1 - confidence, and ``judge.swapped`` is true.
    """
    judge = record["judge"]
    if judge["winner"] != "rejected":
        return {**record, "judge": {**judge, "swapped": False}}
    swapped = dict(record)
    swapped["chosen"], swapped["rejected"] = record["rejected"], record["chosen"]
    if "score_chosen" in record or "score_rejected" in record:
        swapped["score_chosen"], swapped["score_rejected"] = record.get("score_rejected"), record.get("score_chosen")
    if isinstance(record.get("confidence"), (int, float)):
        swapped["confidence"] = 1.0 - record["confidence"]
    swapped["judge"] = {
        **judge,
        "verdicts": [swap_order(entry) for entry in judge["verdicts"]],
        "winner": "chosen",
        "swapped": True,
    }
    if "split_merge" in judge:
        swapped["judge"]["split_merge"] = _swap_split(judge["split_merge"], {"chosen": "rejected", "rejected": "chosen"})
    return swapped


def _swap_split(split: dict[str, Any], winners: dict[Any, Any]) -> dict[str, Any]:
    """Return a split-and-merge entry for swapped answers: orders relabelled, winner renamed through ``winners``."""
    return {**split, "verdicts": [swap_order(entry) for entry in split["verdicts"]],
            "winner": winners.get(split["winner"], split["winner"])}


def list_to_judged_pairs(record: dict[str, Any], comparisons: list[dict[str, Any]], keep_ties: bool) -> list[dict[str, Any]]:
    """Return one pair per decided comparison of a judged list record (winner as chosen).

    Ties become pairs in list order only with ``keep_ties``; comparisons with
    no verdict become no pair. Every other field of the list record is kept.
    """
    rest = {key: value for key, value in record.items()
            if key not in ("prompt", "completions", "scores", "ranks", "judge")}
    pairs = []
    for comparison in comparisons:
        winner = comparison["winner"]
        if winner is None or (winner == TIE and not keep_ties):
            continue
        first, second = comparison["pair"]
        chosen, rejected = (first, second) if winner in (TIE, first) else (second, first)
        verdicts = comparison["verdicts"] if chosen == first else [swap_order(entry) for entry in comparison["verdicts"]]
        judge = {**record["judge"], "verdicts": verdicts, "winner": TIE if winner == TIE else "chosen",
                 "consistent": comparison["consistent"]}
        judge.pop("comparisons", None)
        judge.pop("wins", None)
        if "entropy" in comparison:
            judge["entropy"] = comparison["entropy"]
        if "split_merge" in comparison:
            # Completion indices become chosen/rejected; the orders follow the pair's answer order.
            names = {chosen: "chosen", rejected: "rejected"}
            split = comparison["split_merge"]
            if chosen == first:
                judge["split_merge"] = {**split, "winner": names.get(split["winner"], split["winner"])}
            else:
                judge["split_merge"] = _swap_split(split, names)
        pair = {"prompt": record["prompt"], "chosen": record["completions"][chosen],
                "rejected": record["completions"][rejected], **rest, "judge": judge}
        pairs.append(pair)
    return pairs


def label_outcome(record: dict[str, Any], kind: str, positions: tuple[int, int] | None) -> str | None:
    """Return the input's own label for the first answer (win, tie or lose), or None when it has none."""
    if kind == "pair":
        chosen_score, rejected_score = record.get("score_chosen"), record.get("score_rejected")
        if record["chosen"] == record["rejected"] or (chosen_score is not None and chosen_score == rejected_score):
            return TIE
        return WIN
    if positions is None or (record.get("scores") is None and record.get("ranks") is None):
        return None
    try:
        scores = list_scores(record)
    except RecordError:
        return None
    first, second = scores[positions[0]], scores[positions[1]]
    if first is None or second is None:
        return None
    return compare(first, second)


def answer_models(record: dict[str, Any], kind: str, positions: tuple[int, int] | None) -> tuple[Any, Any] | None:
    """Return the names of the models that wrote the two answers, from ``meta``, or None."""
    meta = record.get("meta")
    if not isinstance(meta, dict):
        return None
    if kind == "pair":
        for chosen_field, rejected_field in PAIR_MODEL_FIELDS:
            if chosen_field in meta and rejected_field in meta:
                return meta[chosen_field], meta[rejected_field]
        return None
    models = meta.get(LIST_MODELS_FIELD)
    if positions is None or not isinstance(models, list) or len(models) != len(record["completions"]):
        return None
    return models[positions[0]], models[positions[1]]


def wins_per_completion(count: int, comparisons: list[dict[str, Any]]) -> list[float]:
    """Return each completion's wins over the comparisons, a tie counting half."""
    wins = [0.0] * count
    for comparison in comparisons:
        winner = comparison["winner"]
        if winner == TIE:
            for position in comparison["pair"]:
                wins[position] += 0.5
        elif winner is not None:
            wins[winner] += 1.0
    return wins
