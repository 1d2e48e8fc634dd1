"""Run statistics of ``pfx judge``: win rate, consistency, parse failures and the judge's biases.

Rates are shares of what they can be computed on, and each comes with its
counts, so a rate over few comparisons reads as such:

- ``win_rate``: wins of the chosen answer plus half the ties, over
  comparisons with a verdict. In a list record's comparison (i, j) the
  earlier completion i counts as chosen.
- ``consistency_rate``: comparisons whose two orders agree, over comparisons
  with a verdict in both orders; ``flip_rate`` is its complement.
- ``parse_failure_rate``: unparseable replies over all replies.
- ``agreement``: decided comparisons whose winner matches the input's own
  label (a pair's chosen answer, a list's scores or ranks), over decided
  comparisons that have such a label.
- ``first_position_rate``: replies that chose the answer shown first, over
  replies that chose an answer (not a tie); 0.5 is an unbiased judge.
- ``longer_answer_rate``: replies that chose the longer answer (in
  characters), over replies that chose one of two answers of different length.
- ``split_merge``: comparisons re-asked with split-and-merge, and how many of
  them became order-consistent (``resolved``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pfx.judging.aggregate import LOSE, WIN, Judgment, outcome
from pfx.judging.parser import A, TIE


def _rate(numerator: float, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


@dataclass
class JudgeStats:
    comparisons: int = 0
    outcomes: Counter = field(default_factory=Counter)
    both_orders: int = 0
    consistent: int = 0
    replies: int = 0
    parse_failures: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    chose_answer: int = 0
    chose_first_position: int = 0
    length_decided: int = 0
    chose_longer: int = 0
    labelled: int = 0
    agreed: int = 0
    identical: int = 0
    split_merged: int = 0
    split_resolved: int = 0
    split_replies: int = 0
    split_parse_failures: int = 0
    named_model: str | None = None
    named_model_comparisons: int = 0
    named_model_points: float = 0.0

    def add(self, judgment: Judgment, first_length: int, second_length: int, label: str | None = None,
            models: tuple[Any, Any] | None = None) -> None:
        """Count one comparison. ``label`` is the input's outcome for the first answer (win, tie, lose) if known."""
        self.comparisons += 1
        self.outcomes[judgment.outcome or "no verdict"] += 1
        self.identical += int(not judgment.samples and judgment.outcome == TIE)
        if judgment.consistent is not None:
            self.both_orders += 1
            self.consistent += int(judgment.consistent)
        for sample in judgment.samples:
            self._add_reply(sample, first_length, second_length)
        if judgment.split is not None:
            # Follow-up replies see a different prompt, so they stay out of the position and length rates.
            self.split_merged += 1
            self.split_resolved += int(bool(judgment.split.consistent))
            self.split_replies += len(judgment.split.samples)
            self.split_parse_failures += sum(sample.parsed.winner is None for sample in judgment.split.samples)
        if label is not None and judgment.outcome in (WIN, LOSE):
            self.labelled += 1
            self.agreed += int(judgment.outcome == label)
        if self.named_model is not None and models is not None and judgment.outcome is not None:
            self._add_named_model(judgment.outcome, models)

    def _add_reply(self, sample: Any, first_length: int, second_length: int) -> None:
        self.replies += 1
        winner = sample.parsed.winner
        if winner is None:
            self.parse_failures += 1
            self.failure_reasons[sample.parsed.error or "unknown"] += 1
            return
        if winner == TIE:
            return
        self.chose_answer += 1
        self.chose_first_position += int(winner == A)
        if first_length != second_length:
            self.length_decided += 1
            chose_first_answer = outcome(sample) == WIN
            self.chose_longer += int(chose_first_answer == (first_length > second_length))

    def _add_named_model(self, result: str, models: tuple[Any, Any]) -> None:
        if self.named_model not in models or models[0] == models[1]:
            return
        self.named_model_comparisons += 1
        named_is_first = models[0] == self.named_model
        if result == TIE:
            self.named_model_points += 0.5
        elif (result == WIN) == named_is_first:
            self.named_model_points += 1.0

    def as_dict(self) -> dict[str, Any]:
        decided = self.outcomes[WIN] + self.outcomes[LOSE] + self.outcomes[TIE]
        summary: dict[str, Any] = {
            "comparisons": self.comparisons,
            "chosen_wins": self.outcomes[WIN],
            "rejected_wins": self.outcomes[LOSE],
            "ties": self.outcomes[TIE],
            "identical_answers": self.identical,
            "no_verdict": self.outcomes["no verdict"],
            "win_rate": _rate(self.outcomes[WIN] + 0.5 * self.outcomes[TIE], decided),
            "compared_both_orders": self.both_orders,
            "consistent": self.consistent,
            "consistency_rate": _rate(self.consistent, self.both_orders),
            "flip_rate": _rate(self.both_orders - self.consistent, self.both_orders),
            "replies": self.replies,
            "parse_failures": self.parse_failures,
            "parse_failure_rate": _rate(self.parse_failures, self.replies),
            "parse_failure_reasons": dict(self.failure_reasons.most_common()),
            "agreement": _rate(self.agreed, self.labelled),
            "agreement_n": self.labelled,
            "first_position_rate": _rate(self.chose_first_position, self.chose_answer),
            "first_position_n": self.chose_answer,
            "longer_answer_rate": _rate(self.chose_longer, self.length_decided),
            "longer_answer_wins": self.chose_longer,
            "shorter_answer_wins": self.length_decided - self.chose_longer,
        }
        if self.split_merged:
            summary["split_merge"] = {"comparisons": self.split_merged, "resolved": self.split_resolved,
                                      "replies": self.split_replies, "parse_failures": self.split_parse_failures}
        if self.named_model is not None:
            summary["named_model"] = self.named_model
            summary["named_model_win_rate"] = _rate(self.named_model_points, self.named_model_comparisons)
            summary["named_model_comparisons"] = self.named_model_comparisons
        return summary

    def line(self) -> str:
        """Return the one-line human summary printed on stderr."""
        summary = self.as_dict()

        def percent(value: float | None) -> str:
            return "n/a" if value is None else f"{100 * value:.1f}%"

        parts = [
            f"{self.comparisons} comparisons",
            f"chosen wins {percent(summary['win_rate'])} (ties count half)",
            f"consistent {self.consistent}/{self.both_orders}",
            f"parse failures {self.parse_failures}/{self.replies}",
            f"first position chosen {percent(summary['first_position_rate'])}",
            f"longer answer chosen {percent(summary['longer_answer_rate'])}",
        ]
        if self.labelled:
            parts.append(f"agreement with input labels {percent(summary['agreement'])} of {self.labelled}")
        if self.split_merged:
            parts.append(f"split-and-merge resolved {self.split_resolved}/{self.split_merged}")
        if self.named_model is not None:
            parts.append(f"{self.named_model} wins {percent(summary['named_model_win_rate'])}")
        return ", ".join(parts)
