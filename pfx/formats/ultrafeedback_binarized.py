"""Read HuggingFaceH4/ultrafeedback_binarized (its ``*_prefs`` splits) into pair records.

A source record contains ``prompt`` (a string), ``chosen`` and ``rejected`` as
whole conversations (the user turn, then the answer), ``score_chosen``,
``score_rejected``, ``prompt_id`` and ``messages`` (a copy of the chosen
conversation, for SFT). The pair's prompt is the run of messages the two
conversations share, so ``prompt`` is conversational. ``messages`` is dropped
and counted as ``dropped field messages``.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.formats import ReadOptions
from pfx.formats.fields import (FeedbackReader, count, optional_number, pair, remaining, require_conversation,
                                split_prompt)


class UltraFeedbackBinarizedReader(FeedbackReader):
    name = "ultrafeedback-binarized"
    description = "HuggingFaceH4/ultrafeedback_binarized: chosen and rejected conversations with scores (pairs)"
    # Outranks the generic trl reader, which also matches prompt/chosen/rejected.
    specificity = 30

    def detect(self, record: dict[str, Any]) -> bool:
        chosen = record.get("chosen")
        return (
            isinstance(record.get("prompt"), str)
            and "score_chosen" in record
            and "score_rejected" in record
            and isinstance(chosen, list)
            and bool(chosen)
            and isinstance(chosen[0], dict)
            and chosen[0].get("role") == "user"
        )

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        chosen = require_conversation(record, "chosen")
        rejected = require_conversation(record, "rejected")
        prompt, chosen_answer, rejected_answer = split_prompt(chosen, rejected, ("chosen", "rejected"))
        # NOTE: no meta.score_scale, because the scale of score_chosen depends on the dataset
        # revision: the first release binarized on the 1-10 critique score, later ones on
        # a mean of the 1-5 aspect ratings, and the records do not say which.
        meta = {
            "format": self.name,
            **remaining(record, ("prompt", "prompt_id", "chosen", "rejected", "messages", "score_chosen",
                                 "score_rejected")),
        }
        if "messages" in record:
            count(options, "dropped field messages")
        fields: dict[str, Any] = {
            "score_chosen": optional_number(record.get("score_chosen"), "score_chosen"),
            "score_rejected": optional_number(record.get("score_rejected"), "score_rejected"),
        }
        if record.get("prompt_id") is not None:
            fields["id"] = record["prompt_id"]
        yield pair(prompt, chosen_answer, rejected_answer, meta, **fields)


READER = UltraFeedbackBinarizedReader()
