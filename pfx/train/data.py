"""Turn input records into tokenized training examples for one loss.

An ``Example`` is one record: the token ids of each of its sequences (prompt +
answer) and the labels its loss reads. Pairs have two sequences (chosen,
rejected), unpaired records two (the completion, and for KTO the prompt with
another record's completion), lists one per completion.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pfx.errors import DataError, RecordError
from pfx.losses import Loss
from pfx.model.tokenize import Encoder
from pfx.records import text_of, validate
from pfx.runner import Run


@dataclass
class Sequence:
    """One prompt + answer; the loss reads log-probs of the answer tokens only."""

    prompt_ids: list[int]
    answer_ids: list[int]

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)


@dataclass
class Example:
    """One training record, tokenized."""

    source: str
    line: int
    sequences: list[Sequence]
    label: bool | None = None  # unpaired records
    scores: list[float] = field(default_factory=list)  # list records: higher is better
    smoothing: float | None = None  # pairs with --confidence-as-smoothing: 1 - confidence
    prompt_text: str | None = None  # unpaired records: the prompt's text, for BCO's distribution matching
    weight: float | None = None  # unpaired records: BCO's density-ratio weight

    @property
    def tokens(self) -> int:
        return sum(len(sequence) for sequence in self.sequences)

    @property
    def unit(self) -> tuple[list[int], list[list[int]]]:
        """The shared prompt ids and every answer's ids (all sequences of an example share one prompt)."""
        return self.sequences[0].prompt_ids, [sequence.answer_ids for sequence in self.sequences]

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def load_examples(run: Run, encoder: Encoder, loss: Loss, confidence_as_smoothing: bool, seed: int) -> list[Example]:
    """Read, validate and tokenize every input record for ``loss``; bad records go through the error policy.

    Raises ``DataError`` when no record is left to train on.
    """
    examples = []
    for item in run.items():
        try:
            validate(item.record, (loss.kind,))
        except RecordError as error:
            message = f"{error}; --loss {loss.name} trains on {loss.kind} records"
            run.reject(item, message, reason=error.reason, field=error.field)
            continue
        try:
            examples.append(_encode(item.record, encoder, loss, confidence_as_smoothing, item.source, item.line))
        except RecordError as error:
            run.reject_error(item, error)
    for event, count in encoder.counts.items():
        run.count(event, count)
    if not examples:
        rejected = sum(run.rejected.values())
        raise DataError(
            f"no record to train on: read {run.read}, rejected {rejected}"
            + (f" ({', '.join(f'{reason}: {n}' for reason, n in run.rejected.items())})" if rejected else "")
            + f"; --loss {loss.name} needs {loss.kind} records"
        )
    if loss.name == "kto":
        add_mismatched_completions(examples, encoder.max_length, seed)
    return examples


def _encode(record: dict[str, Any], encoder: Encoder, loss: Loss, confidence_as_smoothing: bool,
            source: str, line: int) -> Example:
    prompt = record["prompt"]
    if loss.kind == "pair":
        pair = encoder.encode_pair(prompt, record["chosen"], record["rejected"])
        smoothing = None
        if confidence_as_smoothing:
            confidence = record.get("confidence")
            if confidence is None:
                raise RecordError("missing field 'confidence' (--confidence-as-smoothing reads it from every pair)",
                                  "confidence", "missing confidence")
            smoothing = 1.0 - float(confidence)
        sequences = [Sequence(pair.prompt_ids, pair.chosen_ids), Sequence(pair.prompt_ids, pair.rejected_ids)]
        return Example(source, line, sequences, smoothing=smoothing)
    if loss.kind == "unpaired":
        encoded = encoder.encode_answer(prompt, record["completion"], "completion")
        return Example(source, line, [Sequence(encoded.prompt_ids, encoded.answer_ids)], label=record["label"],
                       prompt_text=text_of(prompt))
    completions = record["completions"]
    scores = _list_scores(record)
    prompt_ids, answers = encoder.encode_answers(prompt, completions, [f"completions[{i}]" for i in range(len(completions))])
    return Example(source, line, [Sequence(prompt_ids, ids) for ids in answers], scores=scores)


def _list_scores(record: dict[str, Any]) -> list[float]:
    """Return higher-is-better labels of a list record: its ``scores``, or ``-rank`` from ``ranks``."""
    for name, sign in (("scores", 1.0), ("ranks", -1.0)):
        values = record.get(name)
        if values is None:
            continue
        if any(value is None for value in values):
            raise RecordError(f"field '{name}': a missing value leaves the list unranked; fill it or drop the completion",
                              name, f"incomplete {name}")
        return [sign * float(value) for value in values]
    raise RecordError("a list record needs 'scores' or 'ranks' to train on", "scores", "missing scores")


def add_mismatched_completions(examples: list[Example], max_length: int, seed: int) -> None:
    """Give each unpaired example a second sequence: its prompt with another example's completion.

    KTO estimates its KL reference point from these mismatched pairs. The
    partner is the previous example in a seeded permutation, fixed before
    training so that its reference log-probs can be cached (TRL's KTOTrainer
    also fixes them before training). The completion is cut to fit ``max_length``.
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    for position, index in enumerate(order):
        partner = examples[order[position - 1]] if len(order) > 1 else examples[index]
        prompt_ids = examples[index].sequences[0].prompt_ids
        budget = max(max_length - len(prompt_ids), 1)
        examples[index].sequences.append(Sequence(prompt_ids, partner.sequences[0].answer_ids[:budget]))
