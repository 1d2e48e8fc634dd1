"""Summary metrics of scored pairs: reward accuracy, margins, ranking accuracies, lengths.

Metrics are computed from the output records alone, so a resumed run can count
the records an earlier run wrote. Definitions:

- Reward accuracy: the fraction of pairs with ``score_chosen > score_rejected``
  among pairs that are not tied; ties are counted separately. The same for
  implicit rewards (``implicit_reward_*``).
- Ranking accuracy (Chen et al., "Preference Learning Algorithms Do Not Learn
  Preference Rankings", NeurIPS 2024): the fraction of pairs where the
  model itself gives the chosen answer a higher likelihood,
  ``logπ(y_w|x) > logπ(y_l|x)``, with summed log-probs and with per-token means.
- Idealized ranking accuracy (same paper): the ranking accuracy of the exact
  DPO optimum ``π* ∝ π_ref·exp(r/β)`` when the true preference probability is
  α = P(y_w ≻ y_l): the fraction of pairs with
  ``(1/β)·log(α/(1−α)) + logπ_ref(y_w|x) − logπ_ref(y_l|x) > 0``.
  π_ref is the reference (``ref_logps_*``) when there is one, else the scored
  model (``logps_*``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pfx.records import text_of

DEFAULT_ALPHA = 0.75  # The paper's simulated P(y_w ≻ y_l) for datasets without annotator shares.


@dataclass
class Alpha:
    """α of the idealized ranking accuracy: a constant, or the record field (dotted path) that contains it."""

    value: float | None = DEFAULT_ALPHA
    field: str | None = None

    def __str__(self) -> str:
        return self.field if self.field is not None else f"{self.value:g}"

    def of(self, record: dict[str, Any]) -> float | None:
        """Return α for a record, or None when its field is missing or not a number in [0, 1]."""
        if self.field is None:
            return self.value
        value: Any = record
        for part in self.field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            return None
        return float(value)


def parse_alpha(text: str | None) -> Alpha:
    """Parse ``--alpha``: a number in [0, 1] is a constant, anything else names a record field."""
    if text is None:
        return Alpha()
    try:
        value = float(text)
    except ValueError:
        return Alpha(value=None, field=text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"--alpha {text}: a constant α must lie in [0, 1]")
    return Alpha(value=value)


@dataclass
class Comparison:
    """Counts of one pairwise comparison (chosen against rejected) over many pairs."""

    pairs: int = 0
    correct: int = 0
    ties: int = 0
    margin_total: float = 0.0

    def add(self, chosen: float, rejected: float) -> None:
        self.pairs += 1
        self.margin_total += chosen - rejected
        if chosen == rejected:
            self.ties += 1
        elif chosen > rejected:
            self.correct += 1

    def as_dict(self, with_margin: bool = True) -> dict[str, Any]:
        decided = self.pairs - self.ties
        out: dict[str, Any] = {
            "pairs": self.pairs,
            "correct": self.correct,
            "ties": self.ties,
            "accuracy": self.correct / decided if decided else None,
        }
        if with_margin:
            out["mean_margin"] = self.margin_total / self.pairs if self.pairs else None
        return out


@dataclass
class PairMetrics:
    """Accumulates the summary metrics of scored pair records (other kinds are counted only)."""

    beta: float = 0.1
    alpha: Alpha = field(default_factory=Alpha)
    reward: Comparison = field(default_factory=Comparison)
    implicit: Comparison = field(default_factory=Comparison)
    ranking_sum: Comparison = field(default_factory=Comparison)
    ranking_mean: Comparison = field(default_factory=Comparison)
    idealized: Comparison = field(default_factory=Comparison)
    idealized_reference: str | None = None
    alpha_missing: int = 0
    length_totals: dict[str, float] = field(default_factory=lambda: {
        "chosen_chars": 0.0, "rejected_chars": 0.0, "chosen_tokens": 0.0, "rejected_tokens": 0.0})
    pairs: int = 0
    pairs_with_tokens: int = 0

    def add(self, record: dict[str, Any]) -> None:
        if "chosen" not in record or "rejected" not in record:
            return
        self.pairs += 1
        self.length_totals["chosen_chars"] += len(text_of(record["chosen"]))
        self.length_totals["rejected_chars"] += len(text_of(record["rejected"]))
        if _has(record, "score_chosen", "score_rejected"):
            self.reward.add(record["score_chosen"], record["score_rejected"])
        if _has(record, "implicit_reward_chosen", "implicit_reward_rejected"):
            self.implicit.add(record["implicit_reward_chosen"], record["implicit_reward_rejected"])
        if _has(record, "logps_chosen", "logps_rejected"):
            chosen, rejected = record["logps_chosen"], record["logps_rejected"]
            self.ranking_sum.add(chosen["sum"], rejected["sum"])
            self.ranking_mean.add(chosen["mean"], rejected["mean"])
            self.pairs_with_tokens += 1
            self.length_totals["chosen_tokens"] += chosen["tokens"]
            self.length_totals["rejected_tokens"] += rejected["tokens"]
        self._add_idealized(record)

    def _add_idealized(self, record: dict[str, Any]) -> None:
        for prefix in ("ref_logps", "logps"):
            if _has(record, f"{prefix}_chosen", f"{prefix}_rejected"):
                break
        else:
            return
        alpha = self.alpha.of(record)
        if alpha is None:
            self.alpha_missing += 1
            return
        self.idealized_reference = "reference" if prefix == "ref_logps" else "model"
        reference_margin = record[f"{prefix}_chosen"]["sum"] - record[f"{prefix}_rejected"]["sum"]
        # Compare the optimum's log-likelihood difference with 0, as chosen-vs-rejected values.
        self.idealized.add(_log_odds(alpha) / self.beta + reference_margin, 0.0)

    def summary(self) -> dict[str, Any]:
        """Return the metrics as the JSON-ready ``extra`` part of the run summary."""
        out: dict[str, Any] = {"pairs_scored": self.pairs}
        if self.reward.pairs:
            out["reward_accuracy"] = self.reward.as_dict()
        if self.implicit.pairs:
            out["implicit_reward_accuracy"] = self.implicit.as_dict()
        if self.ranking_sum.pairs:
            out["ranking_accuracy"] = {"sum": self.ranking_sum.as_dict(with_margin=False),
                                       "mean": self.ranking_mean.as_dict(with_margin=False)}
        if self.idealized.pairs or self.alpha_missing:
            out["idealized_ranking_accuracy"] = {
                **self.idealized.as_dict(with_margin=False),
                "beta": self.beta,
                "alpha": str(self.alpha),
                "reference": self.idealized_reference,
                "alpha_missing": self.alpha_missing,
            }
        if self.pairs:
            lengths = {"chosen_chars": self.length_totals["chosen_chars"] / self.pairs,
                       "rejected_chars": self.length_totals["rejected_chars"] / self.pairs}
            if self.pairs_with_tokens:
                lengths["chosen_tokens"] = self.length_totals["chosen_tokens"] / self.pairs_with_tokens
                lengths["rejected_tokens"] = self.length_totals["rejected_tokens"] / self.pairs_with_tokens
            out["mean_lengths"] = lengths
        return out


def summary_lines(summary: dict[str, Any], scores_from_input: bool = False) -> list[str]:
    """Return human-readable lines of a ``PairMetrics.summary`` for stderr.

    ``scores_from_input``: no reward model ran, so the reward accuracy is that of
    the ``score_chosen``/``score_rejected`` the input records brought, and its line names that source.
    """
    lines = []
    reward_label = "reward accuracy of the input's scores" if scores_from_input else "reward accuracy"
    for key, label in (("reward_accuracy", reward_label), ("implicit_reward_accuracy", "implicit reward accuracy")):
        if key in summary:
            part = summary[key]
            lines.append(f"{label} {_percent(part['accuracy'])} ({part['correct']}/{part['pairs'] - part['ties']}, "
                         f"ties {part['ties']}), mean margin {_number(part['mean_margin'])}")
    if "ranking_accuracy" in summary:
        ranking = summary["ranking_accuracy"]
        lines.append(f"ranking accuracy {_percent(ranking['sum']['accuracy'])} (summed log-probs), "
                     f"{_percent(ranking['mean']['accuracy'])} (per-token mean)")
    if "idealized_ranking_accuracy" in summary:
        ideal = summary["idealized_ranking_accuracy"]
        line = (f"idealized ranking accuracy {_percent(ideal['accuracy'])} "
                f"(beta {ideal['beta']:g}, alpha {ideal['alpha']}, reference: {ideal['reference']})")
        if ideal["alpha_missing"]:
            line += f", {ideal['alpha_missing']} pairs without alpha"
        lines.append(line)
    if "mean_lengths" in summary:
        lengths = summary["mean_lengths"]
        line = f"mean length chosen {lengths['chosen_chars']:.0f} chars, rejected {lengths['rejected_chars']:.0f} chars"
        if "chosen_tokens" in lengths:
            line += f"; {lengths['chosen_tokens']:.1f} and {lengths['rejected_tokens']:.1f} tokens"
        lines.append(line)
    return lines


def _has(record: dict[str, Any], first: str, second: str) -> bool:
    return record.get(first) is not None and record.get(second) is not None


def _log_odds(alpha: float) -> float:
    if alpha >= 1.0:
        return math.inf
    if alpha <= 0.0:
        return -math.inf
    return math.log(alpha / (1.0 - alpha))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
