"""The alpaca-eval reader: judge preferences to pairs, with every tie code a tie and nulls counted."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from formats_support import FIXTURES, convert_file, convert_records

ANNOTATIONS = "alpaca-eval/results/{}/annotations.json"


def annotation(preference, output_1="First.", output_2="Second."):
    return {"instruction": "Say something.", "output_1": output_1, "generator_1": "g1", "output_2": output_2,
            "generator_2": "g2", "annotator": "judge", "preference": preference}


def test_alpaca_eval_fixture():
    result = convert_file("alpaca-eval", FIXTURES / "alpaca_eval.jsonl")
    assert result.rejects == []
    assert result.counts == {"dropped: missing preference": 1}
    first, second = result.records[:2]
    assert first == {
        "prompt": "Name a fruit that is yellow.",
        "chosen": "A banana.",
        "rejected": "A plum.",
        "meta": {"format": "alpaca-eval", "generator_chosen": "text_davinci_003", "generator_rejected": "alpaca-7b",
                 "preference": 1, "dataset": "helpful_base", "annotator": "alpaca_eval_gpt4",
                 "price_per_example": 0.012, "time_per_example": 1.1},
    }
    assert (second["chosen"], second["meta"]["generator_chosen"]) == ("Hot.", "alpaca-7b")


@pytest.mark.parametrize("preference", [0, 1.5])
def test_alpaca_eval_tie_codes(tmp_path, preference):
    record = convert_records("alpaca-eval", [annotation(preference)], tmp_path).records[0]
    assert record["meta"]["tie"] is True
    assert record["confidence"] == 0.5
    assert (record["chosen"], record["rejected"]) == ("First.", "Second.")
    assert record["meta"]["preference"] == preference


@pytest.mark.parametrize("preference, chosen, confidence", [(1.8, "Second.", 0.8), (1.25, "First.", 0.75)])
def test_alpaca_eval_soft_preference(tmp_path, preference, chosen, confidence):
    record = convert_records("alpaca-eval", [annotation(preference)], tmp_path).records[0]
    assert record["chosen"] == chosen
    assert record["confidence"] == pytest.approx(confidence)
    assert "tie" not in record["meta"]


def test_alpaca_eval_win_rate_from_pairs(tmp_path):
    # The five annotations p1..p5 of AlpacaEval's win-rate example: 1, 2, 0, 1.5, null.
    records = [annotation(value) for value in (1, 2, 0, 1.5, None)]
    result = convert_records("alpaca-eval", records, tmp_path)
    assert result.counts == {"dropped: missing preference": 1}
    wins = [0.5 if record["meta"].get("tie") else float(record["meta"]["generator_chosen"] == "g2")
            for record in result.records]
    assert len(wins) == 4
    assert sum(wins) / len(wins) == 0.5


@pytest.mark.parametrize("record, reason", [
    ({k: v for k, v in annotation(1).items() if k != "preference"}, "missing field preference"),
    (annotation(3), "invalid preference"),
    (annotation(0.5), "invalid preference"),
    (annotation("first"), "invalid preference"),
    (annotation(1, output_2=None), "missing output_2"),
])
def test_alpaca_eval_bad_records(tmp_path, record, reason):
    result = convert_records("alpaca-eval", [record], tmp_path)
    assert result.records == []
    assert result.reasons == [reason]


@pytest.mark.parametrize("folder, written, ties, missing", [
    ("alpaca-7b/alpaca_eval_gpt4", 805, 16, 0),
    ("alpaca-7b/alpaca_eval_cot_gpt4_turbo_fn", 805, 3, 0),
    ("alpaca-7b/weighted_alpaca_eval_gpt4_turbo", 805, 3, 0),
    ("Mistral-7B-ReMax-v0.1/alpaca_eval_gpt4_turbo_fn", 803, 0, 2),
])
def test_alpaca_eval_real_annotations(shared_data, folder, written, ties, missing):
    path = shared_data / ANNOTATIONS.format(folder)
    source = orjson.loads(path.read_bytes())
    result = convert_file("alpaca-eval", path)
    assert result.rejects == []
    assert len(result.records) == written
    assert sum(1 for record in result.records if record["meta"].get("tie")) == ties
    assert result.counts.get("dropped: missing preference", 0) == missing
    assert result.books_balance
    # Orientation against the source label, record by record.
    labelled = [entry for entry in source if entry["preference"] is not None]
    for entry, record in zip(labelled, result.records):
        preference = entry["preference"]
        if preference in (0, 1.5):
            continue
        expected = entry["output_2"] if preference > 1.5 else entry["output_1"]
        assert record["chosen"] == expected
        assert record["meta"]["preference"] == preference


def test_alpaca_eval_real_mistral_nulls(shared_data):
    path = shared_data / ANNOTATIONS.format("Mistral-7B-ReMax-v0.1/alpaca_eval_gpt4_turbo_fn")
    ids = {record["id"] for record in convert_file("alpaca-eval", path).records}
    # The two annotations whose judge produced nothing are counted, not written.
    assert {106, 305}.isdisjoint(ids)
    assert len(ids) == 803


def test_alpaca_eval_real_preference_counts(shared_data):
    path = shared_data / ANNOTATIONS.format("alpaca-7b/alpaca_eval_gpt4")
    records = convert_file("alpaca-eval", path).records
    preferences = Counter(record["meta"]["preference"] for record in records)
    assert preferences == {1: 584, 2: 205, 0: 16}
    identical = [record for record in records if record["chosen"] == record["rejected"]]
    assert len(identical) == 16
    assert all(record["meta"]["tie"] for record in identical)
