"""The nectar reader: seven-wise ranked answers to ranked list records."""

from __future__ import annotations

import pytest
from formats_support import FIXTURES, convert_file, convert_records

from pfx.transforms import list_to_pairs


def test_nectar_fixture():
    result = convert_file("nectar", FIXTURES / "nectar.jsonl")
    assert result.rejects == []
    assert result.records[0] == {
        "prompt": "\n\nHuman: Suggest a name for a grey cat.\n\nAssistant: ",
        "completions": ["Smokey.", "Ash or Pebble.", "Dog."],
        "ranks": [1, 2, 3],
        "meta": {"format": "nectar", "models": ["gpt-4", "gpt-3.5-turbo", "llama-2-7b-chat"], "turns": 1,
                 "num_responses": 3, "source": ["sharegpt"], "good_natured": True},
    }


def test_nectar_extra_answer_field_counted(tmp_path):
    answers = [{"answer": "A", "model": "m1", "rank": 1, "votes": 3}, {"answer": "B", "model": "m2", "rank": 2}]
    result = convert_records("nectar", [{"prompt": "Hi", "answers": answers}], tmp_path)
    assert result.records[0]["completions"] == ["A", "B"]
    assert result.counts == {"dropped field answers[].votes": 1}


def test_nectar_rank_one_is_chosen():
    # Rank 1 is the best answer; a rankings-to-pairs step must not invert it.
    second = convert_file("nectar", FIXTURES / "nectar.jsonl").records[1]
    pairs, _ = list_to_pairs(second, "best-worst")
    assert pairs[0]["chosen"] == "About 150 million kilometres."
    assert pairs[0]["rejected"] == "Very far."


@pytest.mark.parametrize("answers, reason", [
    ([{"answer": "A", "rank": 1}], "fewer than 2 answers"),
    ([{"answer": "A", "rank": 1}, {"answer": None, "rank": 2}], "invalid answers"),
    ([{"answer": "A", "rank": 1}, {"answer": "B", "rank": 0}], "invalid rank"),
    ([{"answer": "A", "rank": 1}, {"answer": "B", "rank": "second"}], "invalid rank"),
])
def test_nectar_bad_records(tmp_path, answers, reason):
    result = convert_records("nectar", [{"prompt": "Hi", "answers": answers}], tmp_path)
    assert result.records == []
    assert result.reasons == [reason]
