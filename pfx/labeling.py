"""Turn scored candidates into preference pairs with a confidence.

Labeling runs in two steps. ``pfx.scoring.score_records`` first scores every
candidate answer of a list record (or both answers of a pair to relabel) with
the method's models. ``label_record`` then ranks the candidates by that score
and builds pairs with ``pfx.transforms.list_to_pairs``.

Methods (``LABEL_METHODS``):

- ``implicit``: the implicit reward of a policy against a reference,
  ``r(y) = β·(logπ(y|x) − logπ_ref(y|x))``, as in self-labeling with the
  model's own preferences ("Aligning Large Language Models with
  Self-generated Preference Data", Kim et al., 2024).
- ``reward-model``: the score of a sequence-classification reward model.

``confidence = σ(score_chosen − score_rejected)``, the Bradley-Terry
probability that chosen is better. For ``implicit`` that is σ(β·h) with
h = ρ(y_w) − ρ(y_l), the log-ratio margin.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pfx.scoring import FIELDS, get_answer_values
from pfx.transforms import list_to_pairs

# Method name -> the scoring field its label score is read from.
LABEL_METHODS: dict[str, str] = {
    "implicit": "implicit_reward",
    "reward-model": "score",
}

# Fields that scoring adds; they describe candidates, not the output pair, so labeling drops them.
_SCORING_FIELDS = {name for one, many in FIELDS.values() for name in (one, many, f"{one}_chosen", f"{one}_rejected")}


# Fields of the input that the labeled pair replaces; old labels among them move to meta.
_REPLACED_FIELDS = {"prompt", "chosen", "rejected", "completions", "ranks", "confidence", "rank_chosen", "rank_rejected"}


@dataclass
class LabelSettings:
    """Settings that turn scored candidates into pairs: method, pair strategy, tie policy and threshold."""

    method: str
    strategy: str = "best-worst"
    ties: str = "drop"
    min_confidence: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)  # written to meta.label of each pair
    rng: random.Random = field(default_factory=lambda: random.Random(0))


def sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


def label_record(record: dict[str, Any], kind: str, settings: LabelSettings, counts: Counter) -> list[dict[str, Any]]:
    """Return the pairs labeled from one scored list or pair record; count ties, drops and reversals."""
    scores = get_answer_values(record, kind, LABEL_METHODS[settings.method])
    assert scores is not None, "label_record needs a record scored by score_records"
    candidates = record["completions"] if kind == "list" else [record["chosen"], record["rejected"]]

    rest = {key: value for key, value in record.items()
            if key not in _SCORING_FIELDS and key not in _REPLACED_FIELDS}
    meta = dict(rest.get("meta") or {}) if isinstance(rest.get("meta"), dict) else {}
    meta.update(_source_labels(record, kind, settings.method))
    meta["label"] = settings.provenance

    listed = {"prompt": record["prompt"], "completions": candidates, "scores": list(scores)}
    pairs, ties_dropped = list_to_pairs(listed, settings.strategy, 0.0, settings.rng, settings.ties)
    if ties_dropped:
        counts["ties dropped"] += ties_dropped

    out = []
    for pair in pairs:
        confidence = sigmoid(pair["score_chosen"] - pair["score_rejected"])
        if confidence < settings.min_confidence:
            counts["below --min-confidence"] += 1
            continue
        if pair["score_chosen"] == pair["score_rejected"]:
            counts["ties kept"] += 1
        if kind == "pair" and scores[1] > scores[0]:
            counts["pairs reversed"] += 1
        out.append({"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"],
                    "score_chosen": pair["score_chosen"], "score_rejected": pair["score_rejected"],
                    "confidence": confidence, **rest, "meta": meta})
    if len(out) > 1:
        counts["extra pairs from one record"] += len(out) - 1
    return out


def _source_labels(record: dict[str, Any], kind: str, method: str) -> dict[str, Any]:
    """Return the scores and ranks the input had before labeling, for ``meta``."""
    out: dict[str, Any] = {}
    if kind == "list" and record.get("ranks") is not None:
        out["source_ranks"] = record["ranks"]
    if record.get("confidence") is not None:
        out["source_confidence"] = record["confidence"]
    # A reward model's scores replace the old ones, which scoring has already moved to meta.source_scores.
    if method != "reward-model":
        existing = get_answer_values(record, kind, "score")
        if existing is not None:
            out["source_scores"] = existing
    return out
