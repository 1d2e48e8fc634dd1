"""Record transforms shared by several commands: lists to pairs, pairs to unpaired, ties.

All functions are pure: records in, records out. Counting what was dropped is
the caller's job, from the return values.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

from pfx.errors import RecordError

PAIR_STRATEGIES = ("best-worst", "best-random", "all", "adjacent")
TIE_POLICIES = ("drop", "keep")


@dataclass
class PairOptions:
    """List-to-pairs strategy and tie policy, set by ``pfx.options.pairs_options``."""

    strategy: str = "best-worst"  # one of PAIR_STRATEGIES
    min_margin: float = 0.0  # smallest score difference that makes a pair
    seed: int = 0  # seeds the choice of best-random
    ties: str = "drop"  # one of TIE_POLICIES


def list_scores(record: dict[str, Any]) -> list[float | None]:
    """Return one score per completion, higher is better: ``scores``, or ranks turned into scores."""
    completions = record["completions"]
    if record.get("scores") is not None:
        return list(record["scores"])
    if record.get("ranks") is not None:
        # Rank 1 is best, so the negated rank orders the same way as a score.
        return [None if rank is None else -float(rank) for rank in record["ranks"]]
    raise RecordError(
        f"list record has neither 'scores' nor 'ranks' for its {len(completions)} completions",
        "scores",
        "missing scores",
    )


def list_to_pairs(
    record: dict[str, Any],
    strategy: str = "best-worst",
    min_margin: float = 0.0,
    rng: random.Random | None = None,
    ties: str = "drop",
) -> tuple[list[dict[str, Any]], int]:
    """Expand a scored or ranked list record into pair records.

    Strategies: ``best-worst`` (one pair: the top against the bottom),
    ``best-random`` (the top against a random lower one), ``all`` (every
    ordered pair with a margin), ``adjacent`` (each answer against the next one
    down). Completions without a score are left out. A pair whose margin is
    below ``min_margin`` is not produced; equal scores are ties, kept (with
    ``score_chosen == score_rejected``) or dropped per ``ties``.

    Returns the pairs and the number of ties dropped. Each pair keeps every
    other field of the list record (``id``, ``meta``, ...), with the margin's
    scores as ``score_chosen``/``score_rejected``.
    """
    if strategy not in PAIR_STRATEGIES:
        raise ValueError(f"unknown pair strategy {strategy!r}; expected one of {', '.join(PAIR_STRATEGIES)}")
    scores = list_scores(record)
    scored = [(index, score) for index, score in enumerate(scores) if score is not None]
    if len(scored) < 2:
        raise RecordError("list record has fewer than 2 scored completions", "scores", "fewer than 2 scored completions")
    # Stable sort: among equal scores the earlier completion comes first.
    ranked = sorted(scored, key=lambda pair: -pair[1])
    is_rank = record.get("scores") is None

    candidates: list[tuple[int, int]] = []
    if strategy == "best-worst":
        candidates = [(ranked[0][0], ranked[-1][0])]
    elif strategy == "best-random":
        rng = rng or random.Random(0)
        lower = [index for index, score in ranked[1:] if score < ranked[0][1]] or [index for index, _ in ranked[1:]]
        candidates = [(ranked[0][0], rng.choice(lower))]
    elif strategy == "adjacent":
        candidates = [(ranked[i][0], ranked[i + 1][0]) for i in range(len(ranked) - 1)]
    else:
        candidates = [(ranked[i][0], ranked[j][0]) for i in range(len(ranked)) for j in range(i + 1, len(ranked))]

    base = {key: value for key, value in record.items() if key not in ("completions", "scores", "ranks", "prompt")}
    pairs = []
    ties_dropped = 0
    for chosen_index, rejected_index in candidates:
        chosen_score = scores[chosen_index]
        rejected_score = scores[rejected_index]
        assert chosen_score is not None and rejected_score is not None
        margin = chosen_score - rejected_score
        if margin == 0:
            if ties == "drop":
                ties_dropped += 1
                continue
        elif margin < min_margin:
            continue
        pair: dict[str, Any] = {
            "prompt": record["prompt"],
            "chosen": record["completions"][chosen_index],
            "rejected": record["completions"][rejected_index],
        }
        if is_rank:
            pair["rank_chosen"] = record["ranks"][chosen_index]
            pair["rank_rejected"] = record["ranks"][rejected_index]
        else:
            pair["score_chosen"] = chosen_score
            pair["score_rejected"] = rejected_score
        pair.update(base)
        pairs.append(pair)
    return pairs, ties_dropped


def pair_to_unpaired(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Split a pair into two unpaired records (KTO/BCO shape): chosen labelled true, rejected false."""
    rest = {
        key: value
        for key, value in record.items()
        if key not in ("prompt", "chosen", "rejected", "score_chosen", "score_rejected", "confidence")
    }
    for side, label in (("chosen", True), ("rejected", False)):
        unpaired: dict[str, Any] = {"prompt": record["prompt"], "completion": record[side], "label": label}
        if record.get(f"score_{side}") is not None:
            unpaired["score"] = record[f"score_{side}"]
        unpaired.update(rest)
        yield unpaired


def is_tie(record: dict[str, Any]) -> bool:
    """True for a pair marked ``meta.tie: true``, or whose two answers are identical or whose scores are equal.

    Readers mark a tie the source states (an arena "tie" vote, AlpacaEval's
    preference 1.5) with ``meta.tie``, because its answers and scores differ.
    """
    meta = record.get("meta")
    if isinstance(meta, dict) and meta.get("tie") is True:
        return True
    if record.get("chosen") == record.get("rejected"):
        return True
    chosen_score, rejected_score = record.get("score_chosen"), record.get("score_rejected")
    return chosen_score is not None and rejected_score is not None and chosen_score == rejected_score
