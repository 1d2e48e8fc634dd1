"""The record model: kinds and validation messages."""

from __future__ import annotations

import pytest

from pfx.errors import RecordError
from pfx.records import record_kind, validate
from pfx.transforms import list_to_pairs, pair_to_unpaired

CONVERSATION = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    "record, kind",
    [
        ({"prompt": "p", "chosen": "a", "rejected": "b"}, "pair"),
        ({"prompt": "p", "completion": "a", "label": True}, "unpaired"),
        ({"prompt": "p", "completions": ["a", "b"]}, "list"),
        ({"prompt": CONVERSATION}, "prompt"),
    ],
)
def test_validate_kinds(record, kind):
    assert record_kind(record) == kind
    assert validate(record) == kind


@pytest.mark.parametrize(
    "record, message",
    [
        ({"chosen": "a", "rejected": "b"}, "missing field 'prompt'"),
        ({"prompt": "p", "chosen": 3, "rejected": "b"}, "field 'chosen': expected a string or a list of messages, got a number"),
        ({"prompt": [{"role": "human", "content": "x"}], "chosen": "a", "rejected": "b"}, "'human' is not one of"),
        ({"prompt": "p", "completion": "a", "label": "yes"}, "field 'label': expected true or false"),
        ({"prompt": "p", "completions": ["a"]}, "at least 2 answers"),
        ({"prompt": "p", "completions": ["a", "b"], "scores": [1]}, "one per completion"),
        ({"prompt": "p", "chosen": "a", "rejected": "b", "confidence": 1.5}, "outside 0..1"),
        ({"text": "x"}, "not a pfx record"),
        ({"prompt": "p", "chosen": "a"}, "missing field 'rejected'"),
        ({"prompt": "p", "completion": "a"}, "missing field 'label'"),
    ],
)
def test_validate_errors(record, message):
    with pytest.raises(RecordError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        validate(record)


def test_list_to_pairs_strategies():
    record = {"prompt": "p", "completions": ["a", "b", "c", "d"], "scores": [2, 9, 5, 2], "id": 7}
    best_worst, ties = list_to_pairs(record, "best-worst")
    assert [(p["chosen"], p["rejected"]) for p in best_worst] == [("b", "d")]
    assert best_worst[0]["id"] == 7
    assert ties == 0
    adjacent, ties = list_to_pairs(record, "adjacent")
    assert [(p["chosen"], p["rejected"]) for p in adjacent] == [("b", "c"), ("c", "a")]
    assert ties == 1
    everything, ties = list_to_pairs(record, "all", min_margin=3.5)
    assert [(p["chosen"], p["rejected"]) for p in everything] == [("b", "c"), ("b", "a"), ("b", "d")]
    kept, _ = list_to_pairs(record, "adjacent", ties="keep")
    assert len(kept) == 3


def test_list_to_pairs_ranks():
    record = {"prompt": "p", "completions": ["a", "b", "c"], "ranks": [3, 1, 2]}
    pairs, _ = list_to_pairs(record, "best-worst")
    assert (pairs[0]["chosen"], pairs[0]["rejected"]) == ("b", "a")
    assert (pairs[0]["rank_chosen"], pairs[0]["rank_rejected"]) == (1, 3)


def test_pair_to_unpaired_keeps_fields():
    pair = {"prompt": "p", "chosen": "a", "rejected": "b", "score_chosen": 2, "score_rejected": 1, "id": 1}
    assert list(pair_to_unpaired(pair)) == [
        {"prompt": "p", "completion": "a", "label": True, "score": 2, "id": 1},
        {"prompt": "p", "completion": "b", "label": False, "score": 1, "id": 1},
    ]
