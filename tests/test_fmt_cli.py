"""The part-2 readers through ``pfx convert``: detection, the tie policy, counts and error exits."""

from __future__ import annotations

import subprocess
import sys

import pytest
from formats_support import FIXTURE_FILES, FIXTURES

from pfx.formats import available_readers, load_reader
from pfx.formats.pipeline import detect_format
from pfx.io import iter_input



@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_detect_picks_reader(name):
    records = [item.record for item in iter_input([str(FIXTURES / FIXTURE_FILES[name])])]
    readers = {reader: load_reader(reader) for reader in available_readers()}
    assert detect_format(records, readers) == name


def test_detect_rejects_alpaca_model_outputs(shared_data):
    # model_outputs.json has an instruction and one output: no pair, so no part-2 reader may claim it.
    records = [item.record for item in iter_input([str(shared_data / "alpaca-eval/results/alpaca-7b/model_outputs.json")])]
    for name in FIXTURE_FILES:
        assert not load_reader(name).detect(records[0]), name


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_convert_cli_fixture(invoke, name):
    result = invoke(["convert", "--ties", "keep", str(FIXTURES / FIXTURE_FILES[name])])
    assert result.exit_code == 0, result
    assert f"input format {name}" in result.stderr
    assert result.records
    assert all("meta" in record and record["meta"]["format"] == name for record in result.records)


def test_convert_cli_ties_policy(invoke):
    path = str(FIXTURES / "arena.jsonl")
    kept = invoke(["convert", "--from", "arena", "--ties", "keep", path])
    dropped = invoke(["convert", "--from", "arena", "--ties", "drop", path])
    assert len(kept.records) == 4
    assert [record["meta"]["winner"] for record in dropped.records] == ["model_b", "model_a"]
    assert "tie: 2" in dropped.stderr


def test_convert_cli_score_and_label(invoke):
    ultrafeedback = invoke(["convert", "--score", "honesty", str(FIXTURES / "ultrafeedback.jsonl")])
    assert ultrafeedback.records[0]["scores"] == [3, 5, 2, 4]
    pku = invoke(["convert", "--label", "safer", str(FIXTURES / "pku_saferlhf.jsonl")])
    assert pku.records[0]["meta"]["chosen_response_id"] == 0


def test_convert_cli_counts_in_summary(invoke):
    result = invoke(["convert", "--ties", "keep", str(FIXTURES / "alpaca_eval.jsonl")])
    assert len(result.records) == 5
    assert "dropped: missing preference: 1" in result.stderr
    assert "merged" not in result.stderr
    # 6 rows become 3 lists: 3 rows are folded into another row's record.
    helpsteer = invoke(["convert", str(FIXTURES / "helpsteer2.jsonl")])
    assert "read 6, wrote 3; merged: 3" in helpsteer.stderr


def test_convert_cli_bad_record_exit_65(invoke, tmp_path):
    path = tmp_path / "votes.jsonl"
    path.write_text('{"question_id": "q", "model_a": "a", "model_b": "b", "winner": "model_c", "tstamp": 1, '
                    '"conversation_a": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "A"}], '
                    '"conversation_b": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "B"}]}\n')
    result = invoke(["convert", "--from", "arena", str(path)])
    assert result.exit_code == 65
    assert f"{path}:1: field 'winner': 'model_c' is not one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_convert_cli_skip_writes_rejects(invoke, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    source = (FIXTURES / "helpsteer2.jsonl").read_text().splitlines()
    single = tmp_path / "single.jsonl"
    single.write_text("\n".join(source[:3]) + "\n")
    result = invoke(["convert", "--on-error", "skip", "--rejects", str(rejects), str(single)])
    assert result.exit_code == 0, result
    assert len(result.records) == 1
    assert "single response for prompt: 1" in result.stderr
    assert "only one response for this prompt" in rejects.read_text()


def test_convert_cli_unknown_score_exit_2(invoke):
    result = invoke(["convert", "--from", "ultrafeedback", "--score", "kindness", str(FIXTURES / "ultrafeedback.jsonl")])
    assert result.exit_code == 2


def test_convert_cli_real_alpaca_eval_nulls(invoke, shared_data):
    path = shared_data / "alpaca-eval/results/Mistral-7B-ReMax-v0.1/alpaca_eval_gpt4_turbo_fn/annotations.json"
    result = invoke(["convert", str(path)])
    assert result.exit_code == 0, result
    assert len(result.records) == 803
    assert "read 805, wrote 803; dropped: missing preference: 2" in result.stderr


@pytest.mark.parametrize("ties, written", [("keep", 118), ("drop", 80)])
def test_convert_cli_real_rankings_ties(invoke, shared_data, ties, written):
    path = shared_data / "sparse-feedback/alpaca_generation/feedback_rankings_sample_generation.csv"
    result = invoke(["convert", "--ties", ties, str(path)])
    assert result.exit_code == 0, result
    assert "input format sparse-feedback-rankings" in result.stderr
    assert len(result.records) == written
    # The 38 "equal" rankings are the ties; the 2 identical pairs are among them.
    assert ("ties kept: 38" if ties == "keep" else "dropped: tie: 38") in result.stderr
    assert "identical answers: 2" in result.stderr


def test_convert_cli_helpsteer2_attribute_score(invoke):
    result = invoke(["convert", "--score", "correctness", str(FIXTURES / "helpsteer2.jsonl")])
    assert result.exit_code == 0, result
    assert result.records[0]["meta"]["score"] == "correctness"


def test_convert_cli_restored_row_not_expanded(invoke):
    result = invoke(["convert", "--ties", "keep", str(FIXTURES / "sparse_feedback_rankings.csv")])
    assert len(result.records) == 3
    assert "expanded" not in result.stderr


def test_readers_import_no_model_libraries():
    code = ("import sys\nfrom pfx.formats import load_reader\n"
            f"for name in {list(FIXTURE_FILES)!r}:\n    load_reader(name)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
