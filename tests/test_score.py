"""pfx score: reward-model scores, log-probs, implicit rewards, summary metrics, resume and shards."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import orjson
import pytest

from conftest import FIXTURES, parse_jsonl, to_jsonl
from pfx.score_metrics import Alpha, PairMetrics, parse_alpha

PAIRS = FIXTURES / "score" / "pairs.jsonl"
CANDIDATES = FIXTURES / "score" / "candidates.jsonl"


def logp(total, tokens=2):
    return {"sum": total, "mean": total / tokens, "tokens": tokens}


# -- metrics on hand-built records --------------------------------------------------


def test_metrics_reward_accuracy_ties_apart():
    metrics = PairMetrics()
    for chosen, rejected in ((2.0, 1.0), (1.0, 3.0), (0.5, 0.5), (4.0, 0.0)):
        metrics.add({"prompt": "p", "chosen": "a", "rejected": "b", "score_chosen": chosen, "score_rejected": rejected})
    reward = metrics.summary()["reward_accuracy"]
    # Decided pairs: 3, of which 2 rank chosen higher. Margins 1, -2, 0, 4 average 0.75.
    assert reward["pairs"] == 4
    assert reward["ties"] == 1
    assert reward["correct"] == 2
    assert reward["accuracy"] == pytest.approx(2 / 3)
    assert reward["mean_margin"] == pytest.approx(0.75)


def test_metrics_ranking_sum_and_mean():
    # Pair 1: chosen has the higher sum (-4 > -6) but the lower mean (-2.0 < -1.5).
    # Pair 2: the reverse (-9 < -8, but -3.0 > -4.0).
    records = [
        {"prompt": "p", "chosen": "a", "rejected": "b", "logps_chosen": logp(-4.0, 2), "logps_rejected": logp(-6.0, 4)},
        {"prompt": "p", "chosen": "a", "rejected": "b", "logps_chosen": logp(-9.0, 3), "logps_rejected": logp(-8.0, 2)},
    ]
    metrics = PairMetrics()
    for record in records:
        metrics.add(record)
    ranking = metrics.summary()["ranking_accuracy"]
    # So each measure ranks one pair of two correctly.
    assert ranking["sum"]["correct"] == 1
    assert ranking["mean"]["correct"] == 1
    assert ranking["sum"]["accuracy"] == pytest.approx(0.5)
    lengths = metrics.summary()["mean_lengths"]
    assert lengths["chosen_tokens"] == pytest.approx(2.5)
    assert lengths["rejected_tokens"] == pytest.approx(3.0)


def test_metrics_idealized_known_answer():
    # beta = 1, alpha = 0.75: the optimum adds log(0.75 / 0.25) = log 3 = 1.0986 to the
    # reference margin. Reference margins -1.0 (-> +0.0986, right), -1.2 (-> -0.1014,
    # wrong) and +0.5 (right): idealized accuracy 2/3.
    metrics = PairMetrics(beta=1.0, alpha=Alpha(0.75))
    for margin in (-1.0, -1.2, 0.5):
        metrics.add({"prompt": "p", "chosen": "a", "rejected": "b",
                     "ref_logps_chosen": logp(-5.0 + margin), "ref_logps_rejected": logp(-5.0),
                     "logps_chosen": logp(-1.0), "logps_rejected": logp(-9.0)})
    ideal = metrics.summary()["idealized_ranking_accuracy"]
    assert ideal["correct"] == 2
    assert ideal["accuracy"] == pytest.approx(2 / 3)
    assert ideal["reference"] == "reference"


def test_metrics_idealized_alpha_field():
    # alpha from the record: 0.5 adds nothing, so only the reference margin counts;
    # a record without the field is counted as missing.
    metrics = PairMetrics(beta=0.1, alpha=parse_alpha("meta.alpha"))
    metrics.add({"prompt": "p", "chosen": "a", "rejected": "b", "meta": {"alpha": 0.5},
                 "logps_chosen": logp(-3.0), "logps_rejected": logp(-2.0)})
    metrics.add({"prompt": "p", "chosen": "a", "rejected": "b", "meta": {"alpha": 1.0},
                 "logps_chosen": logp(-30.0), "logps_rejected": logp(-2.0)})
    metrics.add({"prompt": "p", "chosen": "a", "rejected": "b",
                 "logps_chosen": logp(-3.0), "logps_rejected": logp(-2.0)})
    ideal = metrics.summary()["idealized_ranking_accuracy"]
    assert ideal["pairs"] == 2
    assert ideal["correct"] == 1
    assert ideal["alpha_missing"] == 1
    assert ideal["reference"] == "model"


def test_summary_lines_name_input_scores():
    from pfx.score_metrics import summary_lines

    summary = {"reward_accuracy": {"accuracy": 1.0, "correct": 2, "pairs": 2, "ties": 0, "mean_margin": 0.5}}
    assert summary_lines(summary, scores_from_input=True)[0].startswith("reward accuracy of the input's scores 100.0%")
    assert summary_lines(summary)[0].startswith("reward accuracy 100.0%")


def test_parse_alpha_out_of_range():
    with pytest.raises(ValueError):
        parse_alpha("1.5")


# -- the command -------------------------------------------------------------------


def test_score_logps_fields(invoke, tiny_model):
    result = invoke(["score", "--logps", "--model", tiny_model("llama"), str(PAIRS)])
    assert result.exit_code == 0, result
    records = result.records
    assert [record["id"] for record in records] == ["p1", "p2", "p3", "p4", "p5"]
    for record in records:
        for side in ("chosen", "rejected"):
            value = record[f"logps_{side}"]
            assert set(value) == {"sum", "mean", "tokens"}
            assert value["sum"] < 0
            assert value["mean"] == pytest.approx(value["sum"] / value["tokens"])
    assert "ranking accuracy" in result.stderr


def test_score_logps_match_engine(invoke, tiny_model):
    from pfx.model.config import ModelOptions
    from pfx.model.loading import load_causal_lm
    from pfx.model.logps import answer_logps
    from pfx.model.tokenize import Encoder

    path = tiny_model("gpt2")
    result = invoke(["score", "--logps", "--model", path, "--batch-size", "3", "--max-length", "32", str(PAIRS)])
    model, tokenizer = load_causal_lm(path, ModelOptions(device="cpu"))
    encoder = Encoder(tokenizer, 32)
    for record in result.records[:4]:
        encoded = encoder.encode_answer(record["prompt"], record["rejected"])
        (expected,) = answer_logps(model, [encoded], batch_size=1)
        assert record["logps_rejected"]["sum"] == pytest.approx(expected.sum, abs=1e-4)
        assert record["logps_rejected"]["tokens"] == expected.count


def test_score_lists_and_unpaired(invoke, tiny_model):
    unpaired = {"prompt": "Name a fruit.", "completion": " Apple.", "label": True}
    text = CANDIDATES.read_text() + to_jsonl([unpaired])
    result = invoke(["score", "--reward-model", tiny_model("qwen2", kind="reward-model"), "--logps",
                     "--model", tiny_model("qwen2")], input=text)
    assert result.exit_code == 0, result
    records = result.records
    assert len(records[0]["scores"]) == 3
    assert len(records[0]["logps"]) == 3
    assert len(records[2]["scores"]) == 3
    assert isinstance(records[3]["score"], float)
    assert set(records[3]["logps"]) == {"sum", "mean", "tokens"}


def test_score_reward_scores_each_distinct_answer_once(invoke, tiny_model, monkeypatch):
    """Three pairs made from one list of three answers need three reward-model sequences."""
    from pfx.model import rewards

    answers = [" Apple.", " Plum, or a pear.", " Well, there are many fruits."]
    pairs = [{"prompt": "Name a fruit.", "chosen": answers[a], "rejected": answers[b]} for a, b in ((0, 1), (0, 2), (1, 2))]
    sequences = []
    reward_scores = rewards.reward_scores
    monkeypatch.setattr(rewards, "reward_scores", lambda m, seqs, b: sequences.extend(seqs) or reward_scores(m, seqs, b))
    result = invoke(["score", "--reward-model", tiny_model("qwen2", kind="reward-model")], input=to_jsonl(pairs))
    assert result.exit_code == 0, result
    assert len(sequences) == 3
    first, second, third = result.records
    assert first["score_chosen"] == second["score_chosen"]
    assert first["score_rejected"] == third["score_chosen"]
    assert second["score_rejected"] == third["score_rejected"]


def test_score_reward_pad_equals_eos(invoke, tiny_model):
    """The gpt2 tokenizer pads with its EOS id; the score must come from the real last token (the EOS)."""
    import torch

    from pfx.model.config import ModelOptions
    from pfx.model.loading import load_reward_model
    from pfx.model.tokenize import Encoder

    path = tiny_model("gpt2", kind="reward-model")
    # The first four fixture pairs are plain text; gpt2 has no chat template for the fifth.
    result = invoke(["score", "--reward-model", path, "--batch-size", "4"],
                    input="".join(PAIRS.read_text().splitlines(keepends=True)[:4]))
    assert result.exit_code == 0, result
    records = result.records
    model, tokenizer = load_reward_model(path, ModelOptions(device="cpu"))
    encoder = Encoder(tokenizer, 1024)
    for record in records:
        encoded = encoder.encode_answer(record["prompt"], record["chosen"])
        ids = torch.tensor([encoded.input_ids])
        assert encoded.input_ids[-1] == tokenizer.eos_token_id == tokenizer.pad_token_id
        with torch.no_grad():
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
            expected = model.score(hidden)[0, -1, 0].item()
        assert record["score_chosen"] == pytest.approx(expected, abs=1e-5)


def test_score_bos_messages_equal_text(invoke, tiny_model):
    """A conversation and its pre-rendered text (which starts with the BOS string) score the same."""
    messages = {"id": "m", "prompt": [{"role": "user", "content": "What is 2 + 3?"}],
                "chosen": [{"role": "assistant", "content": "5"}], "rejected": [{"role": "assistant", "content": "8"}]}
    header = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 3?<|eot_id|>"
    text = {"id": "t", "prompt": header + "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "chosen": "5<|eot_id|>", "rejected": "8<|eot_id|>"}
    result = invoke(["score", "--reward-model", tiny_model("llama", kind="reward-model"), "--logps",
                     "--model", tiny_model("llama")], input=to_jsonl([messages, text]))
    assert result.exit_code == 0, result
    by_messages, by_text = result.records
    assert by_text["score_chosen"] == pytest.approx(by_messages["score_chosen"], abs=1e-5)
    assert by_text["score_rejected"] == pytest.approx(by_messages["score_rejected"], abs=1e-5)
    assert by_text["logps_chosen"]["sum"] == pytest.approx(by_messages["logps_chosen"]["sum"], abs=1e-4)
    assert by_text["logps_chosen"]["tokens"] == by_messages["logps_chosen"]["tokens"]


def test_score_implicit_hand_computed(invoke, tiny_model, tmp_path):
    summary = tmp_path / "summary.json"
    beta = 0.5
    result = invoke(["score", "--implicit", "--model", tiny_model("llama"), "--ref", tiny_model("llama", seed=1),
                     "--beta", str(beta), "--summary", str(summary), str(PAIRS)])
    assert result.exit_code == 0, result
    for record in result.records:
        for side in ("chosen", "rejected"):
            expected = beta * (record[f"logps_{side}"]["sum"] - record[f"ref_logps_{side}"]["sum"])
            assert record[f"implicit_reward_{side}"] == pytest.approx(expected, rel=1e-9)
    report = json.loads(summary.read_text())
    margins = [r["implicit_reward_chosen"] - r["implicit_reward_rejected"] for r in result.records]
    assert report["implicit_reward_accuracy"]["pairs"] == 5
    assert report["implicit_reward_accuracy"]["correct"] == sum(margin > 0 for margin in margins)
    assert report["implicit_reward_accuracy"]["mean_margin"] == pytest.approx(sum(margins) / 5)
    assert report["idealized_ranking_accuracy"]["reference"] == "reference"


def test_score_implicit_same_model_ties(invoke, tiny_model):
    path = tiny_model("qwen2")
    result = invoke(["score", "--implicit", "--model", path, "--ref", path, str(PAIRS)])
    assert result.exit_code == 0, result
    assert all(record["implicit_reward_chosen"] == 0.0 for record in result.records)
    assert "ties 5" in result.stderr


def test_score_truncation_counted(invoke, tiny_model, tmp_path):
    summary = tmp_path / "summary.json"
    record = {"prompt": "Name a fruit.", "chosen": "Apple.",
              "rejected": "Well, there are many fruits one could name, such as apples, pears, plums, cherries, grapes."}
    result = invoke(["score", "--logps", "--model", tiny_model("llama"), "--max-length", "16",
                     "--summary", str(summary)], input=to_jsonl([record]))
    assert result.exit_code == 0, result
    counts = json.loads(summary.read_text())["counts"]
    assert counts["rejected truncated"] == 1
    assert "chosen truncated" not in counts
    (scored,) = result.records
    assert scored["logps_rejected"]["tokens"] < scored["logps_chosen"]["tokens"] + 20


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize("args,message", [
    ([], "nothing to add"),
    (["--logps"], "--logps needs --model"),
    (["--implicit", "--model", "m"], "--implicit needs --ref"),
    (["--ref", "r", "--reward-model", "m"], "--ref is the reference of --implicit"),
    (["--model", "m", "--reward-model", "r"], "--model is the model of --logps"),
    (["--logps", "--model", "m", "--resume"], "--resume needs -o FILE"),
    (["--logps", "--model", "m", "--resume", "-o", "x.jsonl.gz"], "uncompressed"),
    (["--logps", "--model", "m", "--shard", "2/2"], "0 <= K < N"),
    (["--logps", "--model", "m", "--shard", "a/b"], "K/N"),
    (["--logps", "--model", "m", "--alpha", "1.5"], "[0, 1]"),
])
def test_score_usage_errors(invoke, args, message):
    result = invoke(["score", *args], input="")
    assert result.exit_code == 2
    assert message in result.stderr


def test_score_bad_record_fails_with_line(invoke, tiny_model):
    text = to_jsonl([{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}])
    result = invoke(["score", "--logps", "--model", tiny_model("gpt2")], input=text)
    assert result.exit_code == 65
    assert "<stdin>:2" in result.stderr
    assert "Traceback" not in result.stderr


def test_score_skip_writes_rejects(invoke, tiny_model, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    conversation = {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello."}],
                    "rejected": [{"role": "assistant", "content": "Go."}]}
    text = to_jsonl([{"prompt": "a", "chosen": "b", "rejected": "c"}, conversation, {"prompt": "only a prompt"}])
    result = invoke(["score", "--logps", "--model", tiny_model("gpt2"), "--on-error", "skip", "--rejects", str(rejects)],
                    input=text)
    assert result.exit_code == 0, result
    assert len(result.records) == 1
    rejected = parse_jsonl(rejects.read_text())
    assert [entry["line"] for entry in rejected] == [2, 3]
    assert "--chat-template" in rejected[0]["reason"]
    assert "rejected 2" in result.stderr


def test_score_shards_cover_input(invoke, tiny_model):
    path = tiny_model("qwen2")
    outputs = []
    for index in range(3):
        result = invoke(["score", "--logps", "--model", path, "--shard", f"{index}/3", str(PAIRS)])
        assert result.exit_code == 0, result
        outputs.append([record["id"] for record in result.records])
    assert outputs == [["p1", "p4"], ["p2", "p5"], ["p3"]]


# -- resume ----------------------------------------------------------------------------


@pytest.mark.slow
def test_score_resume_after_kill(tiny_model, tmp_path):
    path = tiny_model("gpt2")
    base = [orjson.loads(line) for line in PAIRS.read_text().splitlines()[:4]]
    records = [{**base[i % 4], "id": i} for i in range(400)]
    source = tmp_path / "in.jsonl"
    source.write_text(to_jsonl(records))
    output = tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "pfx", "score", "--logps", "--model", path, "--batch-size", "2", "-o", str(output),
            str(source)]

    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not output.exists() or output.stat().st_size < 2000):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = output.read_bytes()
    assert 0 < written.count(b"\n") < len(records), "the run ended before it could be killed"
    # A killed writer can leave half a line; append one so the resumed run must handle it.
    with open(output, "ab") as handle:
        handle.write(b'{"id": "torn", "prompt": "Name a')

    resumed = subprocess.run([*args, "--resume"], capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    scored = parse_jsonl(output.read_text())
    assert [record["id"] for record in scored] == list(range(len(records)))
    assert "already scored" in resumed.stderr.decode()
    assert "torn last line dropped" in resumed.stderr.decode()
    # Records from before and after the kill agree with each other.
    first, last = scored[0], scored[-4]
    assert first["logps_chosen"]["sum"] == pytest.approx(last["logps_chosen"]["sum"], abs=1e-4)
    assert not math.isnan(last["logps_rejected"]["mean"])


def test_score_interrupt_names_resume(tiny_model, tmp_path):
    base = [orjson.loads(line) for line in PAIRS.read_text().splitlines()[:4]]
    source = tmp_path / "in.jsonl"
    source.write_text(to_jsonl([{**base[i % 4], "id": i} for i in range(400)]))
    output = tmp_path / "out.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "pfx", "score", "--logps", "--model", tiny_model("gpt2"),
                                "--batch-size", "2", "-o", str(output), str(source)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not output.exists() or output.stat().st_size < 2000):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "pfx score: interrupted; the records already written to -o FILE are kept" in stderr.decode()
    assert "--resume" in stderr.decode()
    assert "Traceback" not in stderr.decode()


def test_score_interrupt_without_output_file(tiny_model, tmp_path):
    base = [orjson.loads(line) for line in PAIRS.read_text().splitlines()[:4]]
    source = tmp_path / "in.jsonl"
    source.write_text(to_jsonl([{**base[i % 4], "id": i} for i in range(400)]))
    process = subprocess.Popen([sys.executable, "-m", "pfx", "score", "--logps", "--model", tiny_model("gpt2"),
                                "--batch-size", "2", str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()  # the first scored record has arrived
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "went to standard output, so --resume cannot pick them up; give -o FILE" in stderr.decode()


def test_score_show_tokens_boundary(invoke, tiny_model):
    conversation = {"prompt": [{"role": "user", "content": "Name a primary colour."}],
                    "chosen": [{"role": "assistant", "content": "Blue."}],
                    "rejected": [{"role": "assistant", "content": "Purple."}]}
    result = invoke(["score", "--logps", "--model", tiny_model("llama"), "--show-tokens", "1"],
                    input=to_jsonl([conversation, conversation]))
    assert result.exit_code == 0, result
    lines = [line for line in result.stderr.splitlines() if ": record " in line]
    assert len(lines) == 2
    assert "record 1: chosen: start ['<|begin_of_text|>' 1, '<|start_header_id|>'" in lines[0]
    assert "| answer ['B' " in lines[0]
    assert "'<|eot_id|>' 5]" in lines[0]
    assert lines[1].startswith("pfx score: record 1: rejected:")
    # Showing records does not count their events again: one deduplicated BOS per record.
    assert "bos deduplicated: 2" in result.stderr


def test_score_implicit_lists_and_unpaired(invoke, tiny_model):
    unpaired = {"prompt": "Name a fruit.", "completion": " Apple.", "label": True}
    result = invoke(["score", "--implicit", "--model", tiny_model("qwen2"), "--ref", tiny_model("qwen2", seed=1),
                     "--beta", "0.2"], input=CANDIDATES.read_text() + to_jsonl([unpaired]))
    assert result.exit_code == 0, result
    listed, unpaired_out = result.records[0], result.records[3]
    assert len(listed["implicit_rewards"]) == 3
    for reward, mine, ref in zip(listed["implicit_rewards"], listed["logps"], listed["ref_logps"]):
        assert reward == pytest.approx(0.2 * (mine["sum"] - ref["sum"]))
    assert unpaired_out["implicit_reward"] == pytest.approx(
        0.2 * (unpaired_out["logps"]["sum"] - unpaired_out["ref_logps"]["sum"]))


def test_score_max_length_beyond_model(invoke, tiny_model):
    result = invoke(["score", "--logps", "--model", tiny_model("gpt2"), "--max-length", "4096"], input="")
    assert result.exit_code == 1
    assert "exceeds the 2048 positions" in result.stderr


def test_score_resume_warns_foreign_output(invoke, tiny_model, tmp_path):
    output = tmp_path / "scored.jsonl"
    foreign = [{"prompt": "Another file.", "chosen": "x", "rejected": "y",
                "logps_chosen": {"sum": -1.0, "mean": -1.0, "tokens": 1},
                "logps_rejected": {"sum": -2.0, "mean": -2.0, "tokens": 1}}]
    output.write_text(to_jsonl(foreign))
    result = invoke(["score", "--logps", "--model", tiny_model("llama"), "--resume", "-o", str(output), str(PAIRS)])
    assert result.exit_code == 0, result
    assert "1 records already in" in result.stderr
    assert "output records not in the input: 1" in result.stderr
    assert len(parse_jsonl(output.read_text())) == 6
