"""pfx label: implicit-reward and reward-model labeling of candidates into pairs."""

from __future__ import annotations

import json
import math

import pytest

from conftest import FIXTURES, to_jsonl
from pfx.labeling import sigmoid

CANDIDATES = FIXTURES / "score" / "candidates.jsonl"
FRUIT = {"id": "f", "prompt": "Name a fruit.", "completions": [" Apple.", " A kettle.", " Plums and pears."],
         "meta": {"source": "invented"}}


def implicit_rewards(policy_path, ref_path, prompt, completions, beta):
    """Compute β·(logπ − logπ_ref) per completion, one sequence at a time."""
    from pfx.model.config import ModelOptions
    from pfx.model.loading import load_causal_lm
    from pfx.model.logps import answer_logps
    from pfx.model.tokenize import Encoder

    sums = []
    for path in (policy_path, ref_path):
        model, tokenizer = load_causal_lm(path, ModelOptions(device="cpu"))
        encoder = Encoder(tokenizer, 1024)
        sums.append([answer_logps(model, [encoder.encode_answer(prompt, c)], 1)[0].sum for c in completions])
    return [beta * (mine - ref) for mine, ref in zip(*sums)]


def test_sigmoid_values():
    assert sigmoid(0.0) == 0.5
    assert sigmoid(math.log(3)) == pytest.approx(0.75)
    assert sigmoid(-800.0) == pytest.approx(0.0)


def test_label_implicit_hand_computed(invoke, tiny_model):
    policy, ref = tiny_model("llama"), tiny_model("llama", seed=1)
    beta = 0.5
    result = invoke(["label", "--method", "implicit", "--model", policy, "--ref", ref, "--beta", str(beta)],
                    input=to_jsonl([FRUIT]))
    assert result.exit_code == 0, result
    (pair,) = result.records

    rewards = implicit_rewards(policy, ref, FRUIT["prompt"], FRUIT["completions"], beta)
    best = max(range(3), key=lambda i: rewards[i])
    worst = min(range(3), key=lambda i: rewards[i])
    assert pair["chosen"] == FRUIT["completions"][best]
    assert pair["rejected"] == FRUIT["completions"][worst]
    assert pair["score_chosen"] == pytest.approx(rewards[best], abs=1e-4)
    assert pair["score_rejected"] == pytest.approx(rewards[worst], abs=1e-4)
    assert pair["confidence"] == pytest.approx(1 / (1 + math.exp(-(rewards[best] - rewards[worst]))), abs=1e-5)
    assert pair["id"] == "f"
    assert pair["meta"]["source"] == "invented"
    assert pair["meta"]["label"] == {"method": "implicit", "model": policy, "ref": ref, "beta": beta}
    assert "completions" not in pair
    assert "logps" not in pair


def test_label_reward_model_matches_score(invoke, tiny_model):
    model = tiny_model("qwen2", kind="reward-model")
    scored = invoke(["score", "--reward-model", model, str(CANDIDATES)]).records
    result = invoke(["label", "--method", "reward-model", "--model", model, str(CANDIDATES)])
    assert result.exit_code == 0, result
    assert len(result.records) == 3
    for source, pair in zip(scored, result.records):
        assert pair["score_chosen"] == pytest.approx(max(source["scores"]))
        assert pair["score_rejected"] == pytest.approx(min(source["scores"]))
        assert pair["chosen"] == source["completions"][source["scores"].index(max(source["scores"]))]
        assert pair["meta"]["label"] == {"method": "reward-model", "model": model}


def test_label_best_random_seeded(invoke, tiny_model):
    model = tiny_model("qwen2", kind="reward-model")
    args = ["label", "--method", "reward-model", "--model", model, "--pairs", "best-random", "--seed", "3"]
    first = invoke(args, input=to_jsonl([FRUIT] * 6)).records
    second = invoke(args, input=to_jsonl([FRUIT] * 6)).records
    assert first == second
    chosen = {pair["chosen"] for pair in first}
    assert len(chosen) == 1
    assert all(pair["rejected"] != pair["chosen"] for pair in first)


def test_label_pairs_all_expands(invoke, tiny_model, tmp_path):
    summary = tmp_path / "summary.json"
    result = invoke(["label", "--method", "reward-model", "--model", tiny_model("qwen2", kind="reward-model"),
                     "--pairs", "all", "--summary", str(summary)], input=to_jsonl([FRUIT]))
    assert len(result.records) == 3
    assert all(pair["confidence"] > 0.5 for pair in result.records)
    assert json.loads(summary.read_text())["counts"]["extra pairs from one record"] == 2


@pytest.mark.parametrize("ties,written", [("drop", 0), ("keep", 1)])
def test_label_identical_candidates_tie(invoke, tiny_model, tmp_path, ties, written):
    record = {"prompt": "Name a fruit.", "completions": [" Apple.", " Apple."]}
    summary = tmp_path / "summary.json"
    result = invoke(["label", "--method", "reward-model", "--model", tiny_model("qwen2", kind="reward-model"),
                     "--ties", ties, "--summary", str(summary)], input=to_jsonl([record]))
    assert result.exit_code == 0, result
    assert len(result.records) == written
    counts = json.loads(summary.read_text())["counts"]
    if ties == "drop":
        assert counts["ties dropped"] == 1
    else:
        assert counts["ties kept"] == 1
        assert result.records[0]["confidence"] == 0.5


def test_label_same_policy_and_ref_ties(invoke, tiny_model):
    path = tiny_model("qwen2")
    result = invoke(["label", "--method", "implicit", "--model", path, "--ref", path], input=to_jsonl([FRUIT]))
    assert result.exit_code == 0, result
    assert result.records == []
    assert "ties dropped: 1" in result.stderr


def test_label_min_confidence_drops(invoke, tiny_model, tmp_path):
    summary = tmp_path / "summary.json"
    result = invoke(["label", "--method", "reward-model", "--model", tiny_model("qwen2", kind="reward-model"),
                     "--min-confidence", "0.99", "--summary", str(summary), str(CANDIDATES)])
    assert result.exit_code == 0, result
    assert result.records == []
    report = json.loads(summary.read_text())
    assert report["counts"]["below --min-confidence"] == 3
    assert report["read"] == 3


def test_label_relabels_pairs(invoke, tiny_model):
    model = tiny_model("qwen2", kind="reward-model")
    pair = {"id": "p", "prompt": "Name a fruit.", "chosen": " Apple.", "rejected": " A kettle.",
            "score_chosen": 9, "score_rejected": 1, "confidence": 0.8}
    swapped = {**pair, "id": "q", "chosen": pair["rejected"], "rejected": pair["chosen"]}
    result = invoke(["label", "--method", "reward-model", "--model", model], input=to_jsonl([pair, swapped]))
    assert result.exit_code == 0, result
    first, second = result.records
    assert (first["chosen"], first["rejected"]) == (second["chosen"], second["rejected"])
    assert first["meta"]["source_scores"] == [9, 1]
    assert first["meta"]["source_confidence"] == 0.8
    assert "pairs reversed: 1" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--model", "m"], "Missing option '--method'"),
    (["--method", "implicit"], "needs --model"),
    (["--method", "implicit", "--model", "m"], "needs --ref"),
    (["--method", "reward-model", "--model", "m", "--ref", "r"], "--ref is the reference"),
    (["--method", "reward-model", "--model", "m", "--min-confidence", "2"], "--min-confidence"),
])
def test_label_usage_errors(invoke, args, message):
    result = invoke(["label", *args], input="")
    assert result.exit_code == 2
    assert message in result.stderr


def test_label_unpaired_rejected(invoke, tiny_model):
    record = {"prompt": "Name a fruit.", "completion": " Apple.", "label": True}
    result = invoke(["label", "--method", "reward-model", "--model", tiny_model("qwen2", kind="reward-model")],
                    input=to_jsonl([record]))
    assert result.exit_code == 65
    assert "<stdin>:1" in result.stderr
    assert "unpaired record is not accepted" in result.stderr


def test_label_shards_split_input(invoke, tiny_model):
    model = tiny_model("qwen2", kind="reward-model")
    ids = []
    for index in range(2):
        result = invoke(["label", "--method", "reward-model", "--model", model, "--shard", f"{index}/2",
                         str(CANDIDATES)])
        assert result.exit_code == 0, result
        ids.append([pair["id"] for pair in result.records])
    assert ids == [["c1", "c3"], ["c2"]]
