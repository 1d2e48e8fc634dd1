"""The ultrafeedback reader: raw openbmb/UltraFeedback records to scored list records."""

from __future__ import annotations

import click
import pytest
from formats_support import FIXTURES, convert_file, convert_records

FIXTURE = FIXTURES / "ultrafeedback.jsonl"


def completion(response, overall, helpfulness="4", **extra):
    annotations = {aspect: {"Rating": helpfulness, "Rationale": "r"}
                   for aspect in ("helpfulness", "honesty", "instruction_following", "truthfulness")}
    return {"model": "m", "principle": "helpfulness", "response": response, "overall_score": overall,
            "fine-grained_score": 4.0, "annotations": annotations, **extra}


def test_ultrafeedback_fixture_overall():
    result = convert_file("ultrafeedback", FIXTURE)
    assert result.rejects == []
    first = result.records[0]
    assert first["prompt"] == "Name three primary colours."
    assert first["completions"][1] == "Red, yellow and blue are the traditional primary colours."
    assert first["scores"] == [4.0, 8.5, 3.0, 7.5]
    assert first["meta"]["score_scale"] == [1, 10]
    assert first["meta"]["models"] == ["alpaca-7b", "gpt-4", "falcon-40b-instruct", "ultralm-13b"]
    assert first["meta"]["ratings"][1] == {"overall_score": 8.5, "fine-grained_score": 5.0, "helpfulness": 5,
                                           "honesty": 5, "instruction_following": 5, "truthfulness": 5}
    # Top-level fields the reader does not map pass through under meta.
    assert first["meta"]["source"] == "evol_instruct"
    assert first["meta"]["correct_answers"] == ["Red, yellow and blue"]
    # Rationales, critiques and generation system prompts are dropped, and each record says so.
    assert result.counts == {"dropped field completions[].annotations rationales": 2,
                             "dropped field completions[].critique": 2,
                             "dropped field completions[].custom_system_prompt": 2}


@pytest.mark.parametrize("score, expected, scale", [
    ("fine-grained", [2.5, 5.0, 2.0, 4.75], [1, 5]),
    ("honesty", [3, 5, 2, 4], [1, 5]),
    ("instruction_following", [3, 5, 1, 5], [1, 5]),
    ("instruction-following", [3, 5, 1, 5], [1, 5]),
])
def test_ultrafeedback_score_choice(score, expected, scale):
    first = convert_file("ultrafeedback", FIXTURE, score=score).records[0]
    assert first["scores"] == expected
    assert first["meta"]["score_scale"] == scale


def test_ultrafeedback_na_rating_is_missing_not_zero():
    second = convert_file("ultrafeedback", FIXTURE, score="instruction_following").records[1]
    assert second["scores"] == [None, None]
    assert second["meta"]["ratings"][0]["instruction_following"] is None


def test_ultrafeedback_unknown_score_is_usage_error():
    with pytest.raises(click.UsageError, match="correctness"):
        convert_file("ultrafeedback", FIXTURE, score="correctness")


def test_ultrafeedback_aspect_as_list(tmp_path):
    record = {"instruction": "Hi?", "completions": [completion("a", 5), completion("b", 6)]}
    record["completions"][0]["annotations"]["honesty"] = [{"Rating": "2", "Rationale": "r"}]
    result = convert_records("ultrafeedback", [record], tmp_path, score="honesty")
    assert result.records[0]["scores"] == [2, 4]


@pytest.mark.parametrize("record, reason", [
    ({"completions": [completion("a", 5), completion("b", 6)]}, "missing instruction"),
    ({"instruction": "Hi?", "completions": [completion("a", 5)]}, "fewer than 2 completions"),
    ({"instruction": "Hi?", "completions": "none"}, "fewer than 2 completions"),
    ({"instruction": "Hi?", "completions": [completion("a", "high"), completion("b", 6)]}, "invalid overall_score"),
    ({"instruction": "Hi?", "completions": [completion(None, 5), completion("b", 6)]}, "missing response"),
    ({"instruction": "Hi?", "completions": [completion("a", 5, helpfulness="five"), completion("b", 6)]},
     "invalid helpfulness rating"),
])
def test_ultrafeedback_bad_records(tmp_path, record, reason):
    result = convert_records("ultrafeedback", [record], tmp_path)
    assert result.records == []
    assert result.reasons == [reason]


def test_ultrafeedback_error_names_value(tmp_path):
    record = {"instruction": "Hi?", "completions": [completion("a", 5, helpfulness="five"), completion("b", 6)]}
    message = str(convert_records("ultrafeedback", [record], tmp_path).rejects[0][1])
    assert "'five'" in message
    assert "N/A" in message
