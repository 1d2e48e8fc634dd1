"""Read PKU-Alignment/PKU-SafeRLHF into pair records.

A source record contains a ``prompt``, ``response_0`` and ``response_1``, and two
labels: ``better_response_id`` (more helpful) and ``safer_response_id``.
``--label better|safer`` picks the label that orients the pair. Both labels,
the per-response safety flags, harm categories and severity levels pass
through under ``meta`` unchanged, with ``meta.chosen_response_id`` saying
which response became ``chosen``.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.formats import ReadOptions
from pfx.formats.fields import FeedbackReader, check_choice, pair, remaining, require_choice, require_text

# --label NAME -> source field
LABELS = {"better": "better_response_id", "safer": "safer_response_id"}


class PKUSafeRLHFReader(FeedbackReader):
    name = "pku-saferlhf"
    description = "PKU-Alignment/PKU-SafeRLHF: two responses labelled for helpfulness and safety (pairs)"
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        return "response_0" in record and "response_1" in record and any(field in record for field in LABELS.values())

    def check_options(self, options: ReadOptions) -> None:
        check_choice("label", options.label, LABELS, self.name)

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        prompt = require_text(record, "prompt")
        responses = [require_text(record, "response_0"), require_text(record, "response_1")]
        # int() because exports through pandas can write the label as 0.0 or 1.0.
        chosen_id = int(require_choice(record, LABELS[options.label], (0, 1)))
        meta = {
            "format": self.name,
            "label": options.label,
            "chosen_response_id": chosen_id,
            **remaining(record, ("prompt", "response_0", "response_1")),
        }
        yield pair(prompt, responses[chosen_id], responses[1 - chosen_id], meta)


READER = PKUSafeRLHFReader()
