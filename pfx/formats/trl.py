"""Hugging Face TRL preference datasets, standard (strings) or conversational (messages).

Shapes read: preference with an explicit ``prompt``; preference with an
implicit prompt (only ``chosen`` and ``rejected``, each a whole conversation);
unpaired preference (``prompt``, ``completion``, ``label``). An implicit
prompt is split off at whole messages: it is the longest run of leading
messages both sides share, so each answer starts at an assistant message.
Plain-string implicit prompts are not split, because a character prefix is no
turn boundary; Human/Assistant transcripts go through the hh-rlhf reader.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Reader, ReadOptions
from pfx.formats.hh_rlhf import READER as HH_READER
from pfx.formats.messages import check_conversation, split_conversations
from pfx.records import validate


class TRLReader(Reader):
    name = "trl"
    description = "TRL preference or unpaired preference, standard or conversational, explicit or implicit prompt."
    specificity = 5

    def detect(self, record: dict[str, Any]) -> bool:
        if "chosen" in record and "rejected" in record:
            return isinstance(record["chosen"], (str, list)) and isinstance(record["rejected"], (str, list))
        return {"prompt", "completion", "label"} <= record.keys()

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        if "prompt" in record or not ("chosen" in record and "rejected" in record):
            validate(record, kinds=("pair", "unpaired"))
            return [record]
        if isinstance(record["chosen"], str) and isinstance(record["rejected"], str):
            if HH_READER.detect(record):
                return HH_READER.convert_record(record, options)
            raise RecordError(
                "record has no 'prompt' and its answers are plain strings, which cannot be split into prompt and "
                "answer without turn markers: add a 'prompt' field or give conversations",
                "prompt",
                "implicit prompt in plain strings",
            )
        chosen = check_conversation(record["chosen"], "chosen")
        rejected = check_conversation(record["rejected"], "rejected")
        prompt, chosen_answer, rejected_answer = split_conversations(chosen, rejected)
        rest = {key: value for key, value in record.items() if key not in ("chosen", "rejected")}
        return [{"prompt": prompt, "chosen": chosen_answer, "rejected": rejected_answer, **rest}]


READER = TRLReader()
