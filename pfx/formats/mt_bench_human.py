"""Read MT-bench pairwise judgments (lmsys/mt_bench_human_judgments) into pair records.

A source record is one judgment of two models' answers to an MT-bench
question: ``question_id``, ``model_a``, ``model_b``, ``winner`` (``model_a``,
``model_b``, ``tie``, or in the ``gpt4_pair`` split ``tie (inconsistent)``
when GPT-4's verdicts in the two answer orders disagreed), ``judge`` (an
expert, an author or GPT-4), ``turn`` and both two-turn conversations.

``turn`` says which turn was judged. A turn-1 judgment covers only the first
answer, so the conversations are cut after it and each record cut is
counted as ``unjudged turns cut``; a turn-2 judgment covers the whole conversation,
and its answers run from the first assistant turn to the end. Ties become tie
pairs as in the arena reader.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pfx.errors import RecordError
from pfx.formats import ReadOptions
from pfx.formats.arena import ArenaReader
from pfx.formats.fields import count, require, require_conversation


class MTBenchHumanReader(ArenaReader):
    name = "mt-bench-human"
    description = "lmsys/mt_bench_human_judgments: expert and GPT-4 votes on two models' MT-bench answers (pairs)"
    specificity = 25
    winners: ClassVar[dict[str, int | None]] = {"model_a": 0, "model_b": 1, "tie": None, "tie (inconsistent)": None}
    # Many judgments share one question, so question_id stays under meta.
    unique_question_id: ClassVar[bool] = False

    def detect(self, record: dict[str, Any]) -> bool:
        return (
            all(key in record for key in ("conversation_a", "conversation_b", "winner", "turn"))
            and isinstance(record.get("question_id"), int)
            and "tstamp" not in record
        )

    def conversations(self, record: dict[str, Any], options: ReadOptions) -> tuple[list[dict[str, str]], ...]:
        turn = require(record, "turn", "the judged turn, 1 or 2")
        if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
            raise RecordError(f"field 'turn': expected a turn number of 1 or more, got {turn!r}", "turn",
                              "invalid turn")
        conversations = []
        cut = False
        for name in ("conversation_a", "conversation_b"):
            messages = require_conversation(record, name)
            # A turn is a user message and the answer to it.
            judged = 2 * turn
            if len(messages) < judged:
                raise RecordError(f"field '{name}': turn {turn} was judged but the conversation has only "
                                  f"{len(messages)} messages", name, "judged turn missing")
            cut = cut or len(messages) > judged
            conversations.append(messages[:judged])
        if cut:
            count(options, "unjudged turns cut")
        return tuple(conversations)


READER = MTBenchHumanReader()
