"""The arena reader: Chatbot Arena votes to conversational pairs, with both tie kinds as ties."""

from __future__ import annotations

import pytest
from formats_support import FIXTURES, convert_file, convert_records


def message(role, content):
    return {"role": role, "content": content}


def battle(answer_a="A.", answer_b="B.", **change):
    record = {"question_id": "q1", "model_a": "ma", "model_b": "mb", "winner": "model_a", "judge": "arena_user_1",
              "conversation_a": [message("user", "Hi?"), message("assistant", answer_a)],
              "conversation_b": [message("user", "Hi?"), message("assistant", answer_b)], "turn": 1, "tstamp": 1.0}
    record.update(change)
    return record


def test_arena_fixture_winner_model_b():
    result = convert_file("arena", FIXTURES / "arena.jsonl")
    assert result.rejects == []
    first = result.records[0]
    assert first["prompt"] == [message("user", "What is the boiling point of water?")]
    assert first["chosen"] == [message("assistant", "100 degrees Celsius at sea level.")]
    assert first["rejected"] == [message("assistant", "Fifty degrees.")]
    assert first["id"] == "58210e39b3fd4441a2bd4a518bb44c2d"
    assert first["meta"]["model_chosen"] == "koala-13b"
    assert first["meta"]["model_rejected"] == "chatglm-6b"
    assert first["meta"]["annotator"] == "arena_user_101"
    assert first["meta"]["language"] == "English"
    assert "confidence" not in first
    assert "tie" not in first["meta"]


@pytest.mark.parametrize("index, winner", [(1, "tie"), (2, "tie (bothbad)")])
def test_arena_ties(index, winner):
    record = convert_file("arena", FIXTURES / "arena.jsonl").records[index]
    assert record["meta"]["tie"] is True
    assert record["meta"]["winner"] == winner
    assert record["confidence"] == 0.5
    # A tie keeps the source order: conversation_a is "chosen".
    assert record["meta"]["model_chosen"] in ("oasst-pythia-12b", "vicuna-13b")


def test_arena_multi_turn_keeps_later_turns():
    record = convert_file("arena", FIXTURES / "arena.jsonl").records[3]
    assert record["prompt"] == [message("user", "Name a prime number.")]
    assert record["chosen"] == [message("assistant", "7."), message("user", "Another one?"), message("assistant", "11.")]
    assert record["rejected"][-1] == message("assistant", "15.")


def test_arena_identical_answers_kept(tmp_path):
    record = convert_records("arena", [battle("Same.", "Same.")], tmp_path).records[0]
    assert record["chosen"] == record["rejected"] == [message("assistant", "Same.")]


@pytest.mark.parametrize("change, reason", [
    ({"winner": "model_c"}, "invalid winner"),
    ({"winner": "tie (inconsistent)"}, "invalid winner"),
    ({"winner": None}, "missing winner"),
    ({"conversation_b": []}, "empty conversation_b"),
    ({"conversation_b": "Hi? B."}, "invalid conversation_b"),
    ({"conversation_b": [message("user", "Hello?"), message("assistant", "B.")]}, "no shared prompt"),
    ({"conversation_a": [message("robot", "Hi?"), message("assistant", "A.")]}, "invalid role in conversation_a[0]"),
])
def test_arena_bad_records(tmp_path, change, reason):
    result = convert_records("arena", [battle(**change)], tmp_path)
    assert result.records == []
    assert result.reasons == [reason]
