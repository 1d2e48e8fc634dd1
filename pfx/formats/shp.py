"""Read the Stanford Human Preferences dataset (stanfordnlp/SHP) into pair records.

A source record is a Reddit post (``history``) with two top-level comments,
``human_ref_A`` and ``human_ref_B``. ``labels`` is 1 when A is preferred and 0
when B is. Preference comes from upvotes, so ``score_A``/``score_B`` (comment
scores, unbounded) become ``score_chosen``/``score_rejected``. The comment ids
and timestamps are renamed by side under ``meta``.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.formats import ReadOptions
from pfx.formats.fields import FeedbackReader, optional_number, pair, remaining, require_choice, require_text

SIDE_FIELDS = ("human_ref", "score", "c_root_id", "created_at_utc")


class SHPReader(FeedbackReader):
    name = "shp"
    description = "stanfordnlp/SHP: a Reddit post with two comments, the upvoted one preferred (pairs)"
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        return all(key in record for key in ("history", "human_ref_A", "human_ref_B", "labels"))

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        history = require_text(record, "history")
        answers = {side: require_text(record, f"human_ref_{side}") for side in "AB"}
        label = require_choice(record, "labels", (0, 1))
        chosen_side, rejected_side = ("A", "B") if label == 1 else ("B", "A")

        meta: dict[str, Any] = {"format": self.name, "chosen_side": chosen_side}
        for role, side in (("chosen", chosen_side), ("rejected", rejected_side)):
            for field in ("c_root_id", "created_at_utc"):
                if f"{field}_{side}" in record:
                    meta[f"{field}_{role}"] = record[f"{field}_{side}"]
        used = ["history", "labels"] + [f"{field}_{side}" for field in SIDE_FIELDS for side in "AB"]
        meta.update(remaining(record, used))  # post_id, domain, upvote_ratio, score_ratio, ...
        yield pair(
            history,
            answers[chosen_side],
            answers[rejected_side],
            meta,
            score_chosen=optional_number(record.get(f"score_{chosen_side}"), f"score_{chosen_side}"),
            score_rejected=optional_number(record.get(f"score_{rejected_side}"), f"score_{rejected_side}"),
        )


READER = SHPReader()
