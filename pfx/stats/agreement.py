"""Agreement between two labelings of the same answer pairs (``pfx stats --compare``).

Method as in Bansal, Dang and Grover, "Peering Through Preferences: Unraveling
Feedback Acquisition for Aligning Large Language Models" (ICLR 2024, arXiv
2308.15812). Each labeling gives every pair of answers one outcome: the first
answer wins, ties or loses. The two outcomes of each shared pair fill a 3x3
table; raw agreement is the diagonal share with ties in the denominator, and
Cohen's kappa corrects it for chance.

A labeling is any pfx data: a pair record labels its two answers (chosen wins,
or a tie for equal scores, identical answers, ``meta.tie`` or a judge's tie),
and a list record with scores or ranks labels every two of its answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterator

from pfx.records import prompt_key, text_of
from pfx.stats.measures import cohen_kappa, share
from pfx.transforms import is_tie, list_scores

OUTCOMES = ("win", "tie", "lose")  # of the first answer of a pair, in canonical order
JOINS = ("content", "id")
WIN, TIE, LOSE = range(3)
_JUDGE_OUTCOMES = {"chosen": WIN, "rejected": LOSE, "tie": TIE}


def _digest(*parts: str) -> bytes:
    # 16 bytes: the chance of any collision among 10^9 pairs is about 10^-21.
    return hashlib.blake2b("\x1d".join(parts).encode("utf-8"), digest_size=16).digest()


def _oriented(key: str, first_answer: str, second_answer: str, outcome: int) -> tuple[bytes, int]:
    """Key a pair by its answers in sorted text order, and flip the outcome when the answers were swapped.

    The order is fixed by the texts alone, so both labelings orient a shared
    pair the same way, whatever order each one stored it in.
    """
    if second_answer < first_answer:
        first_answer, second_answer = second_answer, first_answer
        outcome = 2 - outcome
    return _digest(key, first_answer, second_answer), outcome


def _answer(value: Any) -> str:
    return text_of(value).strip()


def _pair_outcome(record: dict[str, Any]) -> int | None:
    judge = record.get("judge")
    if isinstance(judge, dict) and "winner" in judge:
        return _JUDGE_OUTCOMES.get(judge["winner"])  # a null winner labels nothing
    meta = record.get("meta")
    if is_tie(record) or (isinstance(meta, dict) and meta.get("tie") is True):
        return TIE
    return WIN


def labeled_pairs(record: dict[str, Any], join: str) -> Iterator[tuple[bytes, int]]:
    """Yield (pair key, outcome) for every answer pair a record labels, and nothing for records that label none."""
    if join == "id":
        if record.get("id") is None:
            return
        key = "id\x1f" + str(record["id"])
    else:
        key = "prompt\x1f" + prompt_key(record.get("prompt", ""))
    if "chosen" in record and "rejected" in record:
        outcome = _pair_outcome(record)
        if outcome is not None:
            yield _oriented(key, _answer(record["chosen"]), _answer(record["rejected"]), outcome)
        return
    if "completions" in record and (record.get("scores") is not None or record.get("ranks") is not None):
        answers = [_answer(completion) for completion in record["completions"]]
        scores = list_scores(record)
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                if scores[i] is None or scores[j] is None:
                    continue
                if scores[i] > scores[j]:
                    outcome = WIN
                elif scores[i] == scores[j]:
                    outcome = TIE
                else:
                    outcome = LOSE
                yield _oriented(key, answers[i], answers[j], outcome)


@dataclass
class Agreement:
    """The 3x3 outcome table of two labelings, built by streaming the first against the loaded second."""

    join: str = "content"
    other: dict[bytes, int] = field(default_factory=dict)
    other_records: int = 0
    other_duplicates: int = 0
    other_conflicts: int = 0
    table: list[list[int]] = field(default_factory=lambda: [[0] * 3 for _ in range(3)])
    this_pairs: int = 0
    this_duplicates: int = 0
    _joined: set[bytes] = field(default_factory=set)
    _seen: set[bytes] = field(default_factory=set)

    def add_other(self, record: dict[str, Any]) -> None:
        """Load one record of the second labeling. A repeated pair keeps its first outcome and is counted."""
        self.other_records += 1
        for key, outcome in labeled_pairs(record, self.join):
            previous = self.other.get(key)
            if previous is None:
                self.other[key] = outcome
                continue
            self.other_duplicates += 1
            if previous != outcome:
                self.other_conflicts += 1

    def add(self, record: dict[str, Any]) -> None:
        """Join one record of the first labeling against the loaded second one."""
        for key, outcome in labeled_pairs(record, self.join):
            if key in self._seen:
                self.this_duplicates += 1
                continue
            self._seen.add(key)
            self.this_pairs += 1
            other = self.other.get(key)
            if other is None:
                continue
            self._joined.add(key)
            self.table[outcome][other] += 1

    def report(self, path: str) -> dict[str, Any]:
        joined = sum(sum(row) for row in self.table)
        diagonal = sum(self.table[i][i] for i in range(3))
        decided = [self.table[WIN][WIN], self.table[WIN][LOSE], self.table[LOSE][WIN], self.table[LOSE][LOSE]]
        return {
            "file": path,
            "join": self.join,
            "pairs": {
                "this": self.this_pairs,
                "other": len(self.other),
                "joined": joined,
                "only_this": self.this_pairs - joined,
                "only_other": len(self.other) - len(self._joined),
                "duplicates_this": self.this_duplicates,
                "duplicates_other": self.other_duplicates,
                "conflicting_duplicates_other": self.other_conflicts,
            },
            "outcomes": list(OUTCOMES),
            "table": [list(row) for row in self.table],
            "agreement": share(diagonal, joined),
            "agreement_decided": share(decided[0] + decided[3], sum(decided)),
            "kappa": cohen_kappa(self.table),
        }
