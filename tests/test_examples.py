"""Run each recipe under examples/ on real public data with a tiny local model and few steps.

The judge recipes talk to the stub OpenAI-compatible server of tests/openai_stub.py
on 127.0.0.1; the UltraFeedback recipe reads the invented fixtures/ultrafeedback.jsonl
because no real UltraFeedback file is available here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from conftest import FIXTURES, ROOT, parse_jsonl
from openai_stub import StubServer, first_position, longer_answer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HH_RLHF = Path("hh-rlhf") / "harmless-base" / "test.jsonl.gz"
HH_RLHF_SAMPLE = Path("hh-rlhf") / "harmless-base" / "test.first200.jsonl"
# Settings every recipe gets here: the CPU, float32, a learning rate a tiny model notices.
CPU = ["DEVICE=cpu", "DTYPE=float32", "LR=1e-3"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")]


def run_recipe(name: str, out: Path, *variables: str) -> str:
    """Run `make -C examples/NAME` with this interpreter's pfx; return what it printed on stdout."""
    bin_dir = Path(sys.executable).parent
    command = ["make", "-C", str(ROOT / "examples" / name), f"PFX={bin_dir / 'pfx'}", f"PY={sys.executable}",
               f"OUT={out}", "-j2", *variables]
    # Model and request caches go under OUT, never to the home directory.
    env = {**os.environ, "PFX_CACHE": str(out / "cache"), "XDG_CACHE_HOME": str(out / "xdg-cache")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def summary(out: Path, step: str) -> dict:
    return orjson.loads((out / f"{step}.summary.json").read_bytes())


@pytest.fixture(scope="module")
def judge_server():
    """A stub judge on 127.0.0.1 that always prefers the longer answer."""
    with StubServer(longer_answer) as server:
        yield server


def test_examples_hh_rlhf(tmp_path, shared_data, tiny_model, judge_server):
    model = tiny_model("llama")
    out = tmp_path / "hh-rlhf"

    report = run_recipe("hh-rlhf", out, f"DATA={shared_data / HH_RLHF}", f"MODEL={model}", "JUDGE=stub-judge",
                        f"JUDGE_API={judge_server.url}", "TRAIN_PAIRS=16", "TEST_PAIRS=8", "STEPS=2", *CPU)

    convert = summary(out, "convert")
    assert convert["read"] == 2312
    assert convert["written"] + convert["rejected"] + sum(
        n for name, n in convert["counts"].items() if name.startswith("dropped")) == 2312
    judge = summary(out, "judge")
    assert judge["read"] == 16
    assert judge["judge"]["parse_failures"] == 0
    assert judge["judge"]["longer_answer_rate"] == 1.0
    judged = parse_jsonl((out / "judged.jsonl").read_text())
    assert len(judged) == judge["written"]
    assert all(len(record["chosen"]) >= len(record["rejected"]) for record in judged)
    assert (out / "judge-cache").is_dir()
    assert summary(out, "train")["steps"] == 2
    assert summary(out, "score-trained")["written"] == 8
    assert summary(out, "score-start")["written"] == 8
    assert (out / "metrics.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "Judge behaviour" in report
    assert "Model labels against the human labels (16 pairs, judge-stats.json)" in report
    assert "Held-out pairs (8)" in report


def test_examples_hh_rlhf_rejects_overlap(tmp_path, tiny_model):
    # A test file that repeats a training prompt must stop the recipe before any scoring.
    transcripts = [{"chosen": f"\n\nHuman: Question {i}?\n\nAssistant: Yes.",
                    "rejected": f"\n\nHuman: Question {i}?\n\nAssistant: No."} for i in range(4)]
    data = tmp_path / "hh.jsonl"
    data.write_text("".join(orjson.dumps(record).decode() + "\n" for record in transcripts + transcripts[:1]))
    out = tmp_path / "out"
    bin_dir = Path(sys.executable).parent
    command = ["make", "-C", str(ROOT / "examples" / "hh-rlhf"), f"PFX={bin_dir / 'pfx'}", f"PY={sys.executable}",
               f"OUT={out}", f"DATA={data}", f"MODEL={tiny_model('llama')}", "TRAIN_PAIRS=4", "TEST_PAIRS=1",
               f"{out}/test.start.jsonl"]

    result = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert result.returncode != 0
    assert "prompts in both the training data and" in result.stderr
    assert (out / "test.jsonl").exists()
    assert not (out / "overlap.json").exists()
    assert not (out / "test.start.jsonl").exists()


def test_examples_ultrafeedback(tmp_path, tiny_model):
    model = tiny_model("llama")
    out = tmp_path / "ultrafeedback"

    report = run_recipe("ultrafeedback", out, f"DATA={FIXTURES / 'ultrafeedback.jsonl'}", f"MODEL={model}",
                        "TEST_PAIRS=1", "STEPS=1", "BATCH=2", "GRAD_ACCUM=1", *CPU)

    pairs = parse_jsonl((out / "pairs.jsonl").read_text())
    assert len(pairs) == 2
    assert all(pair["meta"]["score_scale"] == [1, 10] for pair in pairs)
    augmented = parse_jsonl((out / "augmented.jsonl").read_text())
    assert len(augmented) == 2
    assert sorted(record["meta"]["relabel_reward"]["swapped"] for record in augmented) == [False, True]
    test_pairs = parse_jsonl((out / "test.goal.jsonl").read_text())
    assert len(test_pairs) == 1
    assert "Overall score: 10." in str(test_pairs[0]["prompt"])
    train = summary(out, "train")
    assert train["counts"]["trained"] == 2
    assert train["steps"] == 1
    assert summary(out, "score-trained")["written"] == 1
    assert "relabel-reward       1        2" in report
    assert "Held-out pairs (1)" in report


def test_examples_self_labeling(tmp_path, shared_data, tiny_model):
    model = tiny_model("llama")
    out = tmp_path / "self-labeling"

    report = run_recipe("self-labeling", out, f"DATA={shared_data / HH_RLHF_SAMPLE}", f"MODEL={model}",
                        "SEED_PAIRS=8", "PROMPTS=4", "TEST_PAIRS=4", "ITERATIONS=2", "SEED_STEPS=1", "STEPS=1",
                        "MAX_NEW_TOKENS=8", "BATCH=4", *CPU)

    prompts = parse_jsonl((out / "prompts.jsonl").read_text())
    assert len(prompts) == 8
    assert all(set(record) == {"prompt"} for record in prompts)
    for iteration in (1, 2):
        candidates = parse_jsonl((out / f"iter{iteration}" / "candidates.jsonl").read_text())
        labeled = parse_jsonl((out / f"iter{iteration}" / "labeled.jsonl").read_text())
        assert len(candidates) == 4
        assert all(len(record["completions"]) == 2 for record in candidates)
        assert [record["prompt"] for record in candidates] == [r["prompt"] for r in prompts[iteration - 1::2]]
        assert all(record["meta"]["label"]["model"] == f"{out}/iter{iteration - 1}/policy" for record in labeled)
        assert summary(out, f"train-{iteration}")["steps"] == 1
        config = orjson.loads((out / f"iter{iteration}" / "policy" / "train_config.json").read_bytes())
        assert config["model"] == f"{out}/iter{iteration - 1}/policy"
    assert summary(out, "score-trained")["written"] == 4
    assert "generate-2" in report
    assert "Held-out pairs (4)" in report


def test_examples_judge_calibration(tmp_path, shared_data, judge_server):
    out = tmp_path / "judge-calibration"

    report = run_recipe("judge-calibration", out, f"DATA={shared_data / HH_RLHF_SAMPLE}", "JUDGE=stub-judge",
                        f"JUDGE_API={judge_server.url}", "PAIRS=20")

    one_order, both_orders = summary(out, "judge-one"), summary(out, "judge-both")
    assert one_order["judge"]["replies"] == 20
    assert both_orders["judge"]["replies"] == 40
    assert both_orders["judge"]["compared_both_orders"] == 20
    # The chosen-first replies of the two-order run come from the one-order run's cache.
    assert both_orders["backend"]["cache_hits"] == 20
    for name in ("one", "both"):
        compare = orjson.loads((out / f"{name}-stats.json").read_bytes())["compare"]
        assert compare["pairs"]["joined"] == 20
    assert "judge-one: chosen wins" in report
    assert "both orders agree n/a (one order)" in report
    assert "Model labels against the human labels (20 pairs, both-stats.json)" in report


def test_examples_judge_calibration_position_bias(tmp_path, shared_data):
    """A judge that always picks the first answer looks perfect in one order; both orders expose it.

    LLM judges tend to favour the first position and to flip when the answers swap places, so a
    single-order agreement with human labels overstates a judge.
    """
    out = tmp_path / "judge-calibration"
    with StubServer(first_position) as server:
        report = run_recipe("judge-calibration", out, f"DATA={shared_data / HH_RLHF_SAMPLE}", "JUDGE=first-position",
                            f"JUDGE_API={server.url}", "PAIRS=10")

    one_order, both_orders = summary(out, "judge-one")["judge"], summary(out, "judge-both")["judge"]
    assert one_order["first_position_rate"] == 1.0
    assert one_order["win_rate"] == 1.0
    assert both_orders["consistent"] == 0
    assert both_orders["ties"] == 10
    assert both_orders["win_rate"] == 0.5
    one_compare = orjson.loads((out / "one-stats.json").read_bytes())["compare"]
    both_compare = orjson.loads((out / "both-stats.json").read_bytes())["compare"]
    assert one_compare["agreement"] == 1.0
    assert both_compare["agreement"] == 0.0
    assert "judge-both: chosen wins 50.0% (ties count half), both orders agree 0.0%, first position picked 100.0%" in report


def pfx_commands(make_output: str) -> list[str]:
    """Return the pfx commands that make ran, from the recipe lines it printed."""
    return sorted(line.split("/pfx ")[1].split()[0] for line in make_output.splitlines() if "/pfx " in line)


def test_examples_rerun_follows_settings(tmp_path, shared_data, judge_server):
    # Make cannot see a changed variable; the STEP.flags files of common.mk make it rerun the right steps.
    out = tmp_path / "judge-calibration"
    settings = [f"DATA={shared_data / HH_RLHF_SAMPLE}", "JUDGE=stub-judge", f"JUDGE_API={judge_server.url}"]
    run_recipe("judge-calibration", out, *settings, "PAIRS=6")

    unchanged = run_recipe("judge-calibration", out, *settings, "PAIRS=6")
    more_pairs = run_recipe("judge-calibration", out, *settings, "PAIRS=8")

    assert pfx_commands(unchanged) == []
    assert pfx_commands(more_pairs) == ["judge", "judge", "stats", "stats"]
    assert summary(out, "judge-both")["read"] == 8
