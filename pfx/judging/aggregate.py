"""Combine the verdicts of both answer orders and all samples into one judgment.

Orders: in "AB" the first answer of the comparison (a pair's chosen answer)
is shown as A; in "BA" it is shown as B. Each parsed verdict becomes an
outcome for the first answer: win, tie or lose.

- Per order, and over all samples, the winner follows the mean outcome
  (win = +1, tie = 0, lose = -1); for score templates it follows the mean
  scores of the two answers, as in FairEval's balanced position calibration.
- ``consistent`` is true when both orders gave a verdict and the two agree,
  false when they disagree, and None when there is nothing to compare (one
  order asked, or no parseable reply in one order; then the other order's
  verdict stands). Orders that disagree make the judgment a tie: a verdict
  that flips with the answer order measures position, not quality.
- ``entropy`` is the entropy (natural log) of the win/tie/lose shares over
  all parsed samples, the BPDE of "Large Language Models are not Fair
  Evaluators" (arXiv 2305.17926); 0 means every sample agreed.
- Parse failures take no part in any of these; with no parsed sample the
  winner is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pfx.judging.parser import A, B, TIE, ParsedReply, pick_higher

ORDERS = ("AB", "BA")
WIN, LOSE = "win", "lose"


@dataclass
class Sample:
    """One judge reply for one order of one comparison."""

    order: str
    raw: str
    parsed: ParsedReply


def outcome(sample: Sample) -> str | None:
    """Return the outcome for the first answer of the comparison: win, tie, lose, or None (parse failure)."""
    winner = sample.parsed.winner
    if winner is None:
        return None
    if winner == TIE:
        return TIE
    first_position = A if sample.order == "AB" else B
    return WIN if winner == first_position else LOSE


def _first_second_scores(sample: Sample) -> tuple[float, float] | None:
    scores = sample.parsed.scores
    if scores is None:
        return None
    if sample.order == "AB":
        return scores[A], scores[B]
    return scores[B], scores[A]


def compare(first: float, second: float) -> str:
    """Return win, tie or lose for the first of two values (scores, or a mean outcome against 0)."""
    return pick_higher(first, second, WIN, LOSE)


def decide(samples: list[Sample]) -> str | None:
    """Return win, tie, lose (for the first answer) from parsed samples, or None when none parsed."""
    parsed = [sample for sample in samples if sample.parsed.winner is not None]
    if not parsed:
        return None
    score_pairs = [_first_second_scores(sample) for sample in parsed]
    if all(pair is not None for pair in score_pairs):
        first = sum(pair[0] for pair in score_pairs) / len(score_pairs)  # type: ignore[index]
        second = sum(pair[1] for pair in score_pairs) / len(score_pairs)  # type: ignore[index]
        return compare(first, second)
    total = sum({WIN: 1, TIE: 0, LOSE: -1}[outcome(sample)] for sample in parsed)  # type: ignore[index]
    return compare(total, 0)


def entropy(samples: list[Sample]) -> float | None:
    """Return the entropy of the win/tie/lose shares of the parsed samples, or None when none parsed."""
    outcomes = [outcome(sample) for sample in samples]
    outcomes = [value for value in outcomes if value is not None]
    if not outcomes:
        return None
    shares = [outcomes.count(value) / len(outcomes) for value in (WIN, TIE, LOSE)]
    return -sum(share * math.log(share) for share in shares if share > 0) + 0.0


@dataclass
class Judgment:
    """The combined result of one comparison."""

    outcome: str | None  # win, tie or lose for the first answer; None: no parsed sample
    consistent: bool | None  # None when the two orders cannot be compared
    entropy: float | None
    samples: list[Sample]
    split: "Judgment | None" = None  # the split-and-merge follow-up of an inconsistent judgment

    def add_split(self, split: "Judgment") -> None:
        """Attach a split-and-merge follow-up; when its two orders agree, its outcome replaces the tie."""
        self.split = split
        if split.consistent:
            self.outcome = split.outcome


def judge_samples(samples: list[Sample]) -> Judgment:
    """Combine all samples of one comparison (one or both orders) into a ``Judgment``."""
    orders = sorted({sample.order for sample in samples})
    consistent: bool | None = None
    result = decide(samples)
    if len(orders) == 2:
        per_order = [decide([sample for sample in samples if sample.order == order]) for order in ORDERS]
        if per_order[0] is not None and per_order[1] is not None:
            consistent = per_order[0] == per_order[1]
            if not consistent:
                result = TIE
    return Judgment(result, consistent, entropy(samples), samples)


def verdict_entry(sample: Sample) -> dict[str, Any]:
    """Return the record form of one sample: order, winner (position or tie), raw text, and scores or error."""
    entry: dict[str, Any] = {"order": sample.order, "winner": sample.parsed.winner, "raw": sample.raw}
    if sample.parsed.scores is not None:
        entry["scores"] = sample.parsed.scores
    if sample.parsed.probability is not None:
        entry["probability_a"] = sample.parsed.probability
    if sample.parsed.error is not None:
        entry["error"] = sample.parsed.error
    return entry


def swap_order(entry: dict[str, Any]) -> dict[str, Any]:
    """Return a verdict entry relabelled for a record whose two answers traded places (AB <-> BA)."""
    return {**entry, "order": "BA" if entry["order"] == "AB" else "AB"}
