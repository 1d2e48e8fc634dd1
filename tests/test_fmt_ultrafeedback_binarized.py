"""The ultrafeedback-binarized reader: H4's chosen/rejected conversations to conversational pairs."""

from __future__ import annotations

import pytest
from formats_support import FIXTURES, convert_file, convert_records


def message(role, content):
    return {"role": role, "content": content}


def test_ultrafeedback_binarized_fixture():
    result = convert_file("ultrafeedback-binarized", FIXTURES / "ultrafeedback_binarized.jsonl")
    assert result.rejects == []
    assert result.records[1] == {
        "prompt": [message("user", "What is 12 times 12?")],
        "chosen": [message("assistant", "144.")],
        "rejected": [message("assistant", "124.")],
        "score_chosen": 10.0,
        "score_rejected": 2.0,
        "id": "d4e5f6",
        "meta": {"format": "ultrafeedback-binarized"},
    }
    assert result.counts == {"dropped field messages": 2}


def test_ultrafeedback_binarized_multi_turn(tmp_path):
    shared = [message("system", "Be brief."), message("user", "Hi"), message("assistant", "Hello."), message("user", "2+2?")]
    record = {"prompt": "Hi", "chosen": shared + [message("assistant", "4")],
              "rejected": shared + [message("assistant", "5")], "score_chosen": 9, "score_rejected": 1}
    pair = convert_records("ultrafeedback-binarized", [record], tmp_path).records[0]
    assert pair["prompt"] == shared
    assert pair["chosen"] == [message("assistant", "4")]
    assert pair["rejected"] == [message("assistant", "5")]


@pytest.mark.parametrize("record, reason", [
    ({"prompt": "Hi", "chosen": [message("user", "Hi"), message("assistant", "A")], "score_chosen": 1,
      "score_rejected": 1}, "missing rejected"),
    ({"prompt": "Hi", "chosen": "Hi A", "rejected": [message("user", "Hi"), message("assistant", "B")]},
     "invalid chosen"),
    ({"prompt": "Hi", "chosen": [message("user", "Hi"), message("assistant", "A")],
      "rejected": [message("user", "Hey"), message("assistant", "B")]}, "no shared prompt"),
    ({"prompt": "Hi", "chosen": [message("user", "Hi"), message("assistant", "A")],
      "rejected": [message("user", "Hi"), message("assistant", "B")], "score_chosen": "ten"}, "invalid score_chosen"),
])
def test_ultrafeedback_binarized_bad_records(tmp_path, record, reason):
    result = convert_records("ultrafeedback-binarized", [record], tmp_path)
    assert result.records == []
    assert result.reasons == [reason]
