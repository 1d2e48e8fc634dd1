"""Evidence on real data: DPO on HH-RLHF pairs with a tiny model learns the training preferences."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_train_hh_reward_accuracy_rises(invoke, tiny_model, shared_data, tmp_path):
    source = shared_data / "hh-rlhf" / "harmless-base" / "test.first200.jsonl"
    converted = invoke(["convert", "--from", "hh-rlhf", str(source)])
    assert converted.exit_code == 0, converted
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(record) + "\n" for record in converted.records[:64]))

    base = tiny_model("llama")
    policy = tmp_path / "policy"
    trained = invoke(["train-dpo", "--model", base, "--lr", "2e-3", "--epochs", "2", "--batch-size", "8",
                      "--max-length", "96", "--log-every", "8", "--ref-cache", str(tmp_path / "cache"),
                      "-o", str(policy), str(pairs)])
    assert trained.exit_code == 0, trained
    assert trained.records[0]["rewards/accuracies"] < 0.75

    # Reward accuracy of the trained policy against its reference, measured by pfx score.
    summary = tmp_path / "score.json"
    scored = invoke(["score", "--implicit", "--model", str(policy), "--ref", base, "--beta", "0.1",
                     "--max-length", "96", "--summary", str(summary), "-o", str(tmp_path / "scored.jsonl"),
                     str(pairs)])
    assert scored.exit_code == 0, scored
    accuracy = json.loads(summary.read_text())["implicit_reward_accuracy"]["accuracy"]
    assert accuracy >= 0.8
