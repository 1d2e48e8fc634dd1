"""``pfx judge`` end to end with a tiny local model: its replies are noise, so every verdict is a counted parse failure."""

from __future__ import annotations

import json

import pytest

from conftest import to_jsonl


@pytest.mark.slow
def test_judge_local_tiny_model(invoke, tiny_model, tmp_path):
    model = tiny_model("llama")
    records = [{"id": "a", "prompt": "Name a fruit.", "chosen": "Apple.", "rejected": "Well, there are many fruits."},
               {"id": "b", "prompt": [{"role": "user", "content": "Is glass a liquid?"}],
                "chosen": [{"role": "assistant", "content": "No, it is an amorphous solid."}],
                "rejected": [{"role": "assistant", "content": "Yes, it flows."}]}]
    summary = tmp_path / "summary.json"
    result = invoke(["judge", "--model", model, "--cache", str(tmp_path / "cache"), "--max-new-tokens", "8",
                     "--max-length", "1024", "--summary", str(summary)], input=to_jsonl(records))
    assert result.exit_code == 0, result
    assert [r["id"] for r in result.records] == ["a", "b"]
    stats = json.loads(summary.read_text())["judge"]
    assert stats["replies"] == 4
    # A random 2-layer model cannot write "Verdict: [[A]]"; whatever it writes is parsed or counted, never lost.
    assert stats["parse_failures"] + stats["first_position_n"] + sum(
        v["winner"] == "tie" for r in result.records for v in r["judge"]["verdicts"]) == 4
    for record in result.records:
        assert len(record["judge"]["verdicts"]) == 2
        assert record["judge"]["model"] == model


@pytest.mark.slow
def test_judge_local_rejects_long_prompt(invoke, tiny_model):
    model = tiny_model("llama")
    record = {"prompt": "Describe a kettle. " * 40, "chosen": "It boils water.", "rejected": "A vessel."}
    result = invoke(["judge", "--model", model, "--no-cache", "--max-new-tokens", "4", "--max-length", "64"],
                    input=to_jsonl([record]))
    assert result.exit_code == 65
    assert "<stdin>:1: the prompt is longer than --max-length 64" in result.stderr


@pytest.mark.slow
def test_judge_local_needs_chat_template(invoke, tiny_model):
    model = tiny_model("gpt2")
    record = {"prompt": "Name a fruit.", "chosen": "Apple.", "rejected": "Six."}
    result = invoke(["judge", "--model", model, "--no-cache"], input=to_jsonl([record]))
    assert result.exit_code == 2
    assert "has no chat template" in result.stderr
    assert "--chat-template FILE" in result.stderr
