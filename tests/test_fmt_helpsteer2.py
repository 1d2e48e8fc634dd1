"""The helpsteer2 reader: consecutive rows sharing a prompt become one list record."""

from __future__ import annotations

import click
import pytest
from formats_support import FIXTURES, convert_file, convert_records

FIXTURE = FIXTURES / "helpsteer2.jsonl"


def row(prompt, answer, helpfulness=3, **change):
    record = {"prompt": prompt, "response": answer, "helpfulness": helpfulness, "correctness": 3, "coherence": 4,
              "complexity": 1, "verbosity": 1}
    record.update(change)
    return record


def test_helpsteer2_fixture_groups_rows():
    result = convert_file("helpsteer2", FIXTURE)
    assert result.rejects == []
    assert len(result.records) == 3
    assert result.counts == {}
    assert result.books_balance
    first = result.records[0]
    assert first["prompt"] == "Explain what a leap year is."
    assert first["completions"][1] == "It is a year."
    assert first["scores"] == [4, 1]
    assert first["meta"]["score"] == "helpfulness"
    assert first["meta"]["score_scale"] == [0, 4]
    assert first["meta"]["ratings"][1] == {"helpfulness": 1, "correctness": 2, "coherence": 3, "complexity": 0,
                                           "verbosity": 0}


def test_helpsteer2_multi_turn_prompt_unchanged():
    third = convert_file("helpsteer2", FIXTURE).records[2]
    assert third["prompt"].startswith("What is the capital of Peru?<extra_id_1>Assistant\nLima.<extra_id_1>User\n")


def test_helpsteer2_score_attribute():
    result = convert_file("helpsteer2", FIXTURE, score="verbosity")
    assert result.records[0]["scores"] == [1, 0]
    assert result.records[0]["meta"]["score"] == "verbosity"


def test_helpsteer2_unknown_score_is_usage_error():
    with pytest.raises(click.UsageError, match="correctness"):
        convert_file("helpsteer2", FIXTURE, score="honesty")


def test_helpsteer2_single_response_rejected(tmp_path):
    result = convert_records("helpsteer2", [row("A?", "a1"), row("B?", "b1"), row("B?", "b2")], tmp_path)
    assert [record["prompt"] for record in result.records] == ["B?"]
    assert result.rejects[0][0] == 1
    assert result.reasons == ["single response for prompt"]


def test_helpsteer2_prompt_repeated_later(tmp_path):
    rows = [row("A?", "a1"), row("A?", "a2"), row("B?", "b1"), row("B?", "b2"), row("A?", "a3"), row("A?", "a4")]
    result = convert_records("helpsteer2", rows, tmp_path)
    # Not merged across the B? rows: memory stays flat, and the repeat is counted.
    assert [record["completions"] for record in result.records] == [["a1", "a2"], ["b1", "b2"], ["a3", "a4"]]
    assert result.counts == {"prompt repeated later": 1}
    assert result.books_balance


def test_helpsteer2_bad_row_leaves_group_intact(tmp_path):
    rows = [row("A?", "a1"), row("A?", "a2", helpfulness=9), row("A?", "a3")]
    result = convert_records("helpsteer2", rows, tmp_path)
    assert result.records[0]["completions"] == ["a1", "a3"]
    assert result.rejects[0][0] == 2
    assert result.reasons == ["invalid helpfulness"]


@pytest.mark.parametrize("change, reason", [
    ({"helpfulness": None}, "missing helpfulness"),
    ({"helpfulness": "good"}, "invalid helpfulness"),
    ({"verbosity": -1}, "invalid verbosity"),
    ({"response": None}, "missing response"),
])
def test_helpsteer2_bad_rows(tmp_path, change, reason):
    result = convert_records("helpsteer2", [row("A?", "a1", **change), row("A?", "a2", **change)], tmp_path)
    assert result.records == []
    assert result.reasons == [reason, reason]
