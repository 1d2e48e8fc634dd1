"""Read Chatbot Arena conversations (lmsys/chatbot_arena_conversations) into pair records.

A source record contains two conversations with the same user turns,
``conversation_a`` and ``conversation_b``, the two models, and the user's
vote ``winner``: ``model_a``, ``model_b``, ``tie`` or ``tie (bothbad)``. The
pair's prompt is the run of messages the two conversations share, which in a
multi-turn battle is the first user turn. Each answer keeps every turn after
it.

Both tie kinds become a tie pair: ``conversation_a`` as ``chosen``,
``meta.tie: true`` and ``confidence: 0.5``, so the convert ``--ties`` policy
can keep or drop it. ``meta.winner`` keeps the vote as written.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from pfx.formats import ReadOptions
from pfx.formats.fields import (FeedbackReader, pair, remaining, require_choice, require_conversation,
                                split_prompt)

CONVERSATION_FIELDS = ("question_id", "model_a", "model_b", "winner", "judge", "conversation_a", "conversation_b",
                       "turn")


class ArenaReader(FeedbackReader):
    name = "arena"
    description = "lmsys/chatbot_arena_conversations: two models' conversations and a user's vote (pairs)"
    specificity = 20
    # winner value -> index of the preferred conversation, or None for a tie
    winners: ClassVar[dict[str, int | None]] = {"model_a": 0, "model_b": 1, "tie": None, "tie (bothbad)": None}
    # Where the question id is unique per record it becomes the record's ``id``.
    unique_question_id: ClassVar[bool] = True

    def detect(self, record: dict[str, Any]) -> bool:
        has_fields = all(key in record for key in ("conversation_a", "conversation_b", "winner", "model_a"))
        # Arena records carry a vote timestamp and a hex question id; MT-bench's ids are integers.
        return has_fields and ("tstamp" in record or isinstance(record.get("question_id"), str))

    def conversations(self, record: dict[str, Any], options: ReadOptions) -> tuple[list[dict[str, str]], ...]:
        """Return the two conversations that were judged."""
        return require_conversation(record, "conversation_a"), require_conversation(record, "conversation_b")

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        winner = require_choice(record, "winner", self.winners)
        first, second = self.conversations(record, options)
        prompt, answer_a, answer_b = split_prompt(first, second, ("conversation_a", "conversation_b"))
        preferred = self.winners[winner]
        models = (record.get("model_a"), record.get("model_b"))
        order = (1, 0) if preferred == 1 else (0, 1)
        answers = (answer_a, answer_b)

        meta: dict[str, Any] = {"format": self.name}
        if not self.unique_question_id and "question_id" in record:
            meta["question_id"] = record["question_id"]
        meta.update({
            "model_chosen": models[order[0]],
            "model_rejected": models[order[1]],
            "winner": winner,
            "annotator": record.get("judge"),
            "turn": record.get("turn"),
            **remaining(record, CONVERSATION_FIELDS),
        })
        record_id = record.get("question_id") if self.unique_question_id else None
        yield pair(prompt, answers[order[0]], answers[order[1]], meta, tie=preferred is None, id=record_id)


READER = ArenaReader()
