"""Read AlpacaEval annotations (tatsu-lab/alpaca_eval ``annotations.json``) into pair records.

A source record contains an ``instruction``, ``output_1`` and ``output_2`` from
``generator_1`` and ``generator_2``, the judge (``annotator``) and its
``preference``:

- 1 or 2: that output is preferred.
- 1.5: a tie, and 0: AlpacaEval's legacy code for identical outputs, also a
  tie. Both become a tie pair (``output_1`` as ``chosen``, ``meta.tie: true``,
  ``confidence: 0.5``) for the convert ``--ties`` policy.
- any other number strictly between 1 and 2: a soft preference from the
  judge's token probabilities, where ``preference - 1`` is the probability
  that ``output_2`` is better. The likelier output becomes ``chosen`` and
  ``confidence`` is its probability.
- null: the judge gave no usable answer. The record is not written and is
  counted as ``dropped: missing preference``, so win rates leave it out instead of
  counting it as a loss or a tie.

The raw preference, the judge's ``raw_completion`` and every other field stay
under ``meta``.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import ReadOptions
from pfx.formats.fields import DROPPED, FeedbackReader, count, optional_number, pair, remaining, require_text

TIE_PREFERENCES = (0, 1.5)


class AlpacaEvalReader(FeedbackReader):
    name = "alpaca-eval"
    description = "tatsu-lab/alpaca_eval annotations: a judge's preference between two outputs (pairs)"
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        return all(key in record for key in ("instruction", "output_1", "output_2", "preference"))

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        instruction = require_text(record, "instruction")
        outputs = (require_text(record, "output_1"), require_text(record, "output_2"))
        if "preference" not in record:
            raise RecordError("missing field 'preference' (expected 1, 2, 1.5, 0 or null)", "preference",
                              "missing field preference")
        preference = optional_number(record["preference"], "preference")
        if preference is None:
            count(options, DROPPED + "missing preference")
            return
        if preference not in TIE_PREFERENCES and not 1 <= preference <= 2:
            raise RecordError(f"field 'preference': {preference} is outside 1..2 (expected 1, 2, a soft preference "
                              "between them, 1.5 or 0 for a tie, or null)", "preference", "invalid preference")

        tie = preference in TIE_PREFERENCES
        probability_second = preference - 1
        chosen_index = 1 if not tie and probability_second > 0.5 else 0
        confidence = None
        if not tie and preference not in (1, 2):
            confidence = max(probability_second, 1 - probability_second)
        generators = (record.get("generator_1"), record.get("generator_2"))
        meta = {
            "format": self.name,
            "generator_chosen": generators[chosen_index],
            "generator_rejected": generators[1 - chosen_index],
            "preference": record["preference"],
            **remaining(record, ("instruction", "output_1", "output_2", "generator_1", "generator_2", "preference",
                                 "id")),
        }
        yield pair(instruction, outputs[chosen_index], outputs[1 - chosen_index], meta, tie=tie,
                   confidence=confidence, id=record.get("id"))


READER = AlpacaEvalReader()
