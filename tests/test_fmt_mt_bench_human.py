"""The mt-bench-human reader: judgments of one turn to pairs, cut at the judged turn."""

from __future__ import annotations

import pytest
from formats_support import FIXTURES, convert_file, convert_records

FIXTURE = FIXTURES / "mt_bench_human.jsonl"


def message(role, content):
    return {"role": role, "content": content}


def test_mt_bench_turn_one_cut_after_first_answer():
    result = convert_file("mt-bench-human", FIXTURE)
    assert result.rejects == []
    assert result.records[0] == {
        "prompt": [message("user", "Write a short travel note about a harbour town.")],
        "chosen": [message("assistant", "Fishing boats, salt air and a market at dawn.")],
        "rejected": [message("assistant", "It was nice.")],
        "meta": {"format": "mt-bench-human", "question_id": 81, "model_chosen": "gpt-3.5-turbo",
                 "model_rejected": "alpaca-13b", "winner": "model_b", "annotator": "expert_0", "turn": 1},
    }
    # The two turn-1 judgments in the fixture each lose their unjudged second turn.
    assert result.counts == {"unjudged turns cut": 2}


def test_mt_bench_turn_two_keeps_both_turns():
    record = convert_file("mt-bench-human", FIXTURE).records[1]
    assert record["prompt"] == [message("user", "Write a short travel note about a harbour town.")]
    assert [m["role"] for m in record["chosen"]] == ["assistant", "user", "assistant"]
    assert record["chosen"][-1]["content"] == "A harbour town of boats, salt air and dawn markets."
    assert record["rejected"][-1]["content"] == "Nice town."


@pytest.mark.parametrize("index, winner", [(2, "tie"), (3, "tie (inconsistent)")])
def test_mt_bench_ties(index, winner):
    record = convert_file("mt-bench-human", FIXTURE).records[index]
    assert record["meta"]["tie"] is True
    assert record["meta"]["winner"] == winner
    assert record["confidence"] == 0.5
    assert record["meta"]["model_chosen"] == "gpt-4"
    assert "id" not in record


@pytest.mark.parametrize("change, reason", [
    ({"turn": 3}, "judged turn missing"),
    ({"turn": 0}, "invalid turn"),
    ({"turn": "1"}, "invalid turn"),
    ({"winner": "tie (bothbad)"}, "invalid winner"),
])
def test_mt_bench_bad_records(tmp_path, change, reason):
    record = {"question_id": 81, "model_a": "a", "model_b": "b", "winner": "model_a", "judge": "expert_1",
              "conversation_a": [message("user", "Q"), message("assistant", "A1"), message("user", "Q2"),
                                 message("assistant", "A2")],
              "conversation_b": [message("user", "Q"), message("assistant", "B1"), message("user", "Q2"),
                                 message("assistant", "B2")], "turn": 2}
    result = convert_records("mt-bench-human", [{**record, **change}], tmp_path)
    assert result.records == []
    assert result.reasons == [reason]
