"""The dataset report of ``pfx stats``: one pass over the records, memory bounded by what each statistic needs.

Prompts are remembered as 8-byte hashes (for duplicates and for the overlap
with ``--against``), lengths as one counter per distinct length, scores as
running moments. No record is kept.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from pfx.errors import RecordError
from pfx.records import Kind, Text, is_conversation, is_empty, prompt_key, same_answer, text_of
from pfx.stats.measures import LengthDistribution, ScoreSummary, share, wilson_interval
from pfx.transforms import list_scores

KINDS: tuple[Kind, ...] = ("pair", "list", "unpaired", "prompt")
LENGTH_FIELDS = ("prompt", "chosen", "rejected", "completion", "completions")
# Overlapping prompts quoted in the report, each cut to this many characters.
EXAMPLES = 3
EXAMPLE_CHARS = 100

TokenCounter = Callable[[str], int]


def prompt_digest(prompt: Text) -> bytes:
    # 8 bytes: among a million distinct prompts the chance of any collision is about 3 * 10^-8.
    return hashlib.blake2b(prompt_key(prompt).encode("utf-8"), digest_size=8).digest()


@dataclass
class LengthBias:
    """How often the chosen answer is the longer one, over pairs whose answers differ in length."""

    chosen_longer: int = 0
    rejected_longer: int = 0
    equal: int = 0

    def add(self, chosen: int, rejected: int) -> None:
        if chosen > rejected:
            self.chosen_longer += 1
        elif rejected > chosen:
            self.rejected_longer += 1
        else:
            self.equal += 1

    def report(self, unit: str) -> dict[str, Any]:
        decided = self.chosen_longer + self.rejected_longer
        return {
            "unit": unit,
            "pairs": decided + self.equal,
            "chosen_longer": self.chosen_longer,
            "rejected_longer": self.rejected_longer,
            "equal_length": self.equal,
            "chosen_longer_share": share(self.chosen_longer, decided),
            "ci95": wilson_interval(self.chosen_longer, decided),
        }


@dataclass
class Lengths:
    """Length distributions of each text field, and the length bias of pairs, in one unit."""

    unit: str
    fields: dict[str, LengthDistribution] = field(default_factory=lambda: {f: LengthDistribution() for f in LENGTH_FIELDS})
    bias: LengthBias = field(default_factory=LengthBias)

    def report(self) -> dict[str, Any]:
        return {"unit": self.unit, **{name: dist.summary() for name, dist in self.fields.items()}}


@dataclass
class JudgeStats:
    """Verdict bookkeeping of judged records: the final winner, consistency, and the position of each verdict's winner."""

    records: int = 0
    winners: Counter = field(default_factory=Counter)
    consistent: Counter = field(default_factory=Counter)
    positions: Counter = field(default_factory=Counter)

    def add(self, judge: dict[str, Any]) -> None:
        self.records += 1
        self.winners[str(judge.get("winner"))] += 1
        if "consistent" in judge:
            # null: the two orders could not be compared (one order asked, or one order unparseable).
            value = judge["consistent"]
            self.consistent["unknown" if value is None else str(bool(value)).lower()] += 1
        for verdict in judge.get("verdicts") or []:
            if isinstance(verdict, dict):
                # "A" is the answer shown first, whichever order the verdict used.
                self.positions[str(verdict.get("winner"))] += 1

    def report(self) -> dict[str, Any] | None:
        if not self.records:
            return None
        first, second = self.positions["A"], self.positions["B"]
        return {
            "records": self.records,
            "winner": {name: self.winners[name] for name in ("chosen", "rejected", "tie", "None")},
            "consistent": {name: self.consistent[name] for name in ("true", "false", "unknown")},
            "verdicts": {"first": first, "second": second, "tie": self.positions["tie"], "null": self.positions["None"]},
            "first_position_share": share(first, first + second),
            "first_position_ci95": wilson_interval(first, first + second),
        }


@dataclass
class Overlap:
    """Prompt overlap of the input with a second file (``--against``), the train/test leakage check."""

    path: str
    digests: set[bytes] = field(default_factory=set)
    records: int = 0
    overlapping_records: int = 0
    overlapping: set[bytes] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)

    def add_against(self, record: dict[str, Any]) -> None:
        self.records += 1
        self.digests.add(prompt_digest(record["prompt"]))

    def add(self, prompt: Text, digest: bytes) -> None:
        if digest not in self.digests:
            return
        self.overlapping_records += 1
        if digest not in self.overlapping and len(self.examples) < EXAMPLES:
            self.examples.append(text_of(prompt).strip()[:EXAMPLE_CHARS])
        self.overlapping.add(digest)

    def report(self, input_records: int) -> dict[str, Any]:
        return {
            "file": self.path,
            "records": self.records,
            "distinct_prompts": len(self.digests),
            "overlapping_records": self.overlapping_records,
            "overlapping_prompts": len(self.overlapping),
            "share_of_input_records": share(self.overlapping_records, input_records),
            "share_of_against_prompts": share(len(self.overlapping), len(self.digests)),
            "examples": self.examples,
        }


class DatasetStats:
    """Accumulate the statistics of validated records. ``report()`` returns the JSON object that ``pfx stats`` prints."""

    def __init__(self, count_tokens: TokenCounter | None = None, tokenizer_name: str | None = None,
                 overlap: Overlap | None = None) -> None:
        self.records = 0
        self.kinds: Counter = Counter()
        self.shapes: Counter = Counter()
        self.ties: Counter = Counter()
        self.empty: Counter = Counter()
        self.labels: Counter = Counter()
        self.prompt_counts: dict[bytes, int] = {}
        self.characters = Lengths("characters")
        self.count_tokens = count_tokens
        self.tokenizer_name = tokenizer_name
        self.tokens = Lengths("tokens") if count_tokens else None
        self.scores = {name: ScoreSummary() for name in ("chosen", "rejected", "margin", "completion", "list")}
        self.negative_margins = 0
        self.judge = JudgeStats()
        self.overlap = overlap

    def add(self, record: dict[str, Any], kind: Kind) -> None:
        """Add one record validated as ``kind``; raise ``RecordError``, before counting anything, for a non-numeric ``score``."""
        score = record.get("score") if kind == "unpaired" else None
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise RecordError(f"field 'score': expected a number, got {score!r}", "score", "invalid score")
        self.records += 1
        self.kinds[kind] += 1
        prompt = record["prompt"]
        self.shapes["conversational" if is_conversation(prompt) else "standard"] += 1
        digest = prompt_digest(prompt)
        self.prompt_counts[digest] = self.prompt_counts.get(digest, 0) + 1
        if self.overlap is not None:
            self.overlap.add(prompt, digest)
        self._add_text("prompt", prompt)
        if kind == "pair":
            self._add_pair(record)
        elif kind == "list":
            self._add_list(record)
        elif kind == "unpaired":
            self._add_text("completion", record["completion"])
            self.labels[str(record["label"]).lower()] += 1
            if score is not None:
                self.scores["completion"].add(score)
        if isinstance(record.get("judge"), dict):
            self.judge.add(record["judge"])

    def _add_text(self, name: str, value: Text) -> tuple[int, int]:
        """Count one text field's length and emptiness, and return its length in characters and in tokens (0 without a tokenizer)."""
        text = text_of(value)
        if is_empty(value):
            self.empty[name] += 1
        self.characters.fields[name].add(len(text))
        tokens = 0
        if self.tokens is not None and self.count_tokens is not None:
            tokens = self.count_tokens(text)
            self.tokens.fields[name].add(tokens)
        return len(text), tokens

    def _add_pair(self, record: dict[str, Any]) -> None:
        chosen_characters, chosen_tokens = self._add_text("chosen", record["chosen"])
        rejected_characters, rejected_tokens = self._add_text("rejected", record["rejected"])
        self.characters.bias.add(chosen_characters, rejected_characters)
        if self.tokens is not None:
            self.tokens.bias.add(chosen_tokens, rejected_tokens)
        if same_answer(record["chosen"], record["rejected"]):
            self.ties["identical_answers"] += 1
        score_chosen, score_rejected = record.get("score_chosen"), record.get("score_rejected")
        if score_chosen is not None:
            self.scores["chosen"].add(score_chosen)
        if score_rejected is not None:
            self.scores["rejected"].add(score_rejected)
        if score_chosen is not None and score_rejected is not None:
            margin = score_chosen - score_rejected
            self.scores["margin"].add(margin)
            if margin == 0:
                self.ties["equal_scores"] += 1
            elif margin < 0:
                self.negative_margins += 1

    def _add_list(self, record: dict[str, Any]) -> None:
        for completion in record["completions"]:
            self._add_text("completions", completion)
        if record.get("scores") is None and record.get("ranks") is None:
            return
        scores = [score for score in list_scores(record) if score is not None]
        if record.get("scores") is not None:
            for score in scores:
                self.scores["list"].add(score)
        if len(set(scores)) < len(scores):
            self.ties["lists_with_tied_scores"] += 1

    def report(self) -> dict[str, Any]:
        duplicated = sum(1 for count in self.prompt_counts.values() if count > 1)
        scores = {name: summary.summary() for name, summary in self.scores.items()}
        if scores["margin"] is not None:
            scores["margin"]["negative"] = self.negative_margins
        report: dict[str, Any] = {
            "records": self.records,
            "kinds": {kind: self.kinds[kind] for kind in KINDS},
            "prompt_shapes": {"standard": self.shapes["standard"], "conversational": self.shapes["conversational"]},
            "ties": {name: self.ties[name] for name in ("equal_scores", "identical_answers", "lists_with_tied_scores")},
            "empty": {name: self.empty[name] for name in LENGTH_FIELDS},
            "prompts": {
                "distinct": len(self.prompt_counts),
                "duplicate_records": self.records - len(self.prompt_counts),
                "duplicated_prompts": duplicated,
            },
            "lengths": self.characters.report(),
            "length_bias": self.characters.bias.report("characters"),
            "token_lengths": None,
            "token_length_bias": None,
            "scores": scores,
            "labels": {"true": self.labels["true"], "false": self.labels["false"]},
            "judge": self.judge.report(),
            "against": self.overlap.report(self.records) if self.overlap is not None else None,
            "compare": None,
        }
        if self.tokens is not None:
            report["token_lengths"] = {"tokenizer": self.tokenizer_name, **self.tokens.report()}
            report["token_length_bias"] = self.tokens.bias.report("tokens")
        return report

