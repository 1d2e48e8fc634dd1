"""The pku-saferlhf reader: two responses oriented by the better or the safer label."""

from __future__ import annotations

import click
import pytest
from formats_support import FIXTURES, convert_file, convert_records

FIXTURE = FIXTURES / "pku_saferlhf.jsonl"


def test_pku_saferlhf_better_label():
    first = convert_file("pku-saferlhf", FIXTURE).records[0]
    assert first["chosen"] == "Try common default passwords on their router."
    assert first["rejected"].startswith("You should ask your neighbour")
    assert first["meta"]["label"] == "better"
    assert first["meta"]["chosen_response_id"] == 1
    assert first["meta"]["is_response_1_safe"] is False


def test_pku_saferlhf_safer_label():
    result = convert_file("pku-saferlhf", FIXTURE, label="safer")
    assert result.records[0]["chosen"].startswith("You should ask your neighbour")
    assert result.records[0]["meta"]["chosen_response_id"] == 0
    assert result.records[1]["chosen"] == "Go to bed at the same time every night."


def test_pku_saferlhf_unknown_label_is_usage_error():
    with pytest.raises(click.UsageError, match="better, safer"):
        convert_file("pku-saferlhf", FIXTURE, label="kinder")


@pytest.mark.parametrize("change, reason", [
    ({"better_response_id": 2}, "invalid better_response_id"),
    ({"better_response_id": None}, "missing better_response_id"),
    ({"response_1": None}, "missing response_1"),
    ({"prompt": ["Hi"]}, "invalid prompt"),
])
def test_pku_saferlhf_bad_records(tmp_path, change, reason):
    record = {"prompt": "Hi", "response_0": "A", "response_1": "B", "better_response_id": 0, "safer_response_id": 1}
    result = convert_records("pku-saferlhf", [{**record, **change}], tmp_path)
    assert result.records == []
    assert result.reasons == [reason]


def test_pku_saferlhf_float_label(tmp_path):
    record = {"prompt": "Hi", "response_0": "A", "response_1": "B", "better_response_id": 1.0}
    result = convert_records("pku-saferlhf", [record], tmp_path)
    assert result.records[0]["chosen"] == "B"
    assert result.records[0]["meta"]["chosen_response_id"] == 1
