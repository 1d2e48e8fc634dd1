"""Run the demo pipeline (demo/Makefile) end to end and check every step's output and the report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from conftest import FIXTURES, ROOT, parse_jsonl

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Fewer optimizer steps than the demo's defaults keep the test short; the tiny model still learns the held-out pairs.
TEST_STEPS = "12"
TEST_SEED_STEPS = "6"
SEED_PAIRS = 24

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def pfx_commands(make_output: str) -> set[str]:
    """Return the pfx commands that make ran, from the recipe lines it printed."""
    return {line.split("/pfx ")[1].split()[0] for line in make_output.splitlines() if "/pfx " in line}


def make(out: Path, data: Path, *targets: str) -> subprocess.CompletedProcess:
    """Run demo/Makefile from the repository root, as `make demo` does, with this interpreter's pfx."""
    pfx = Path(sys.executable).parent / "pfx"
    command = ["make", "-f", "demo/Makefile", f"PFX={pfx}", f"PY={sys.executable}", f"OUT={out}", f"DATA={data}",
               f"STEPS={TEST_STEPS}", f"SEED_STEPS={TEST_SEED_STEPS}", "-j2", *targets]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def summary(out: Path, step: str) -> dict:
    return orjson.loads((out / f"{step}.summary.json").read_bytes())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Run the whole demo once into a temporary OUT, on a copy of the fixtures (so a test can touch them)."""
    root = tmp_path_factory.mktemp("demo")
    data = root / "data"
    shutil.copytree(FIXTURES / "demo", data)
    out = root / "out"
    result = make(out, data)
    return out, data, result


@pytest.mark.slow
def test_demo_convert_counts(demo_run):
    out, _, _ = demo_run
    train = summary(out, "convert")

    assert train["read"] == 65
    assert train["written"] == 62
    assert train["rejected_by_reason"] == {"no turns in chosen": 1, "missing rejected": 1}
    assert train["counts"]["dropped: tie"] == 1
    assert train["counts"]["empty chosen"] == 1
    pairs = parse_jsonl((out / "pairs.jsonl").read_text())
    assert len(pairs) == 62
    # HH-RLHF records have no prompt field; every prompt is the shared turns, never empty.
    assert all(pair["prompt"].startswith("\n\nHuman: ") for pair in pairs)
    assert all(pair["prompt"].endswith("\n\nAssistant:") for pair in pairs)
    assert train["counts"]["multi-turn answers"] == 1
    rejects = parse_jsonl((out / "convert.rejects.jsonl").read_text())
    assert [entry["line"] for entry in rejects] == [45, 58]
    heldout = summary(out, "convert-heldout")
    assert (heldout["read"], heldout["written"], heldout["rejected"]) == (20, 20, 0)


@pytest.mark.slow
def test_demo_stats_output(demo_run):
    out, _, _ = demo_run
    stats = orjson.loads((out / "stats.json").read_bytes())

    overlap = orjson.loads((out / "overlap.json").read_bytes())

    assert stats["records"] == 62
    assert stats["kinds"]["pair"] == 62
    assert stats["length_bias"]["chosen_longer"] > stats["length_bias"]["rejected_longer"]
    assert overlap["against"]["records"] == 20
    assert overlap["against"]["overlapping_prompts"] == 0


@pytest.mark.slow
def test_demo_seed_split(demo_run):
    out, _, _ = demo_run
    pairs = (out / "pairs.jsonl").read_text().splitlines()

    assert (out / "seed.jsonl").read_text().splitlines() == pairs[:SEED_PAIRS]
    assert (out / "unlabeled.jsonl").read_text().splitlines() == pairs[SEED_PAIRS:]
    assert summary(out, "seed-train")["counts"]["trained"] == SEED_PAIRS


@pytest.mark.slow
def test_demo_label_and_relabel(demo_run):
    out, _, _ = demo_run
    labeled = parse_jsonl((out / "labeled.jsonl").read_text())
    relabel = summary(out, "relabel-reward")
    augmented = parse_jsonl((out / "augmented.jsonl").read_text())
    agreement = orjson.loads((out / "label-agreement.json").read_bytes())["compare"]

    assert len(labeled) == 62 - SEED_PAIRS
    assert all(record["meta"]["label"]["method"] == "implicit" for record in labeled)
    assert all(record["score_chosen"] >= record["score_rejected"] for record in labeled)
    # Each pair inside the scale becomes two records; pairs outside it are rejected with a reason.
    assert relabel["read"] == len(labeled)
    assert relabel["written"] == 2 * (relabel["read"] - relabel["rejected"])
    assert len(augmented) == relabel["written"]
    assert sum(record["meta"]["relabel_reward"]["swapped"] for record in augmented) == relabel["written"] // 2
    assert agreement["pairs"]["joined"] == len(labeled)
    assert agreement["agreement"] > 0.5


@pytest.mark.slow
def test_demo_training_metrics(demo_run):
    out, _, _ = demo_run
    metrics = parse_jsonl((out / "metrics.jsonl").read_text())
    seed_metrics = parse_jsonl((out / "seed-metrics.jsonl").read_text())
    train = summary(out, "train")

    assert [record["step"] for record in metrics] == list(range(1, int(TEST_STEPS) + 1))
    assert [record["step"] for record in seed_metrics] == list(range(1, int(TEST_SEED_STEPS) + 1))
    assert train["steps"] == int(TEST_STEPS)
    assert train["counts"]["trained"] == summary(out, "relabel-reward")["written"]
    assert seed_metrics[-1]["loss"] < seed_metrics[0]["loss"]
    assert (out / "policy" / "model.safetensors").exists()
    assert (out / "seed-policy" / "model.safetensors").exists()


@pytest.mark.slow
def test_demo_heldout_scores(demo_run):
    out, _, _ = demo_run
    start = summary(out, "score-start")
    trained = summary(out, "score-trained")
    records = parse_jsonl((out / "heldout.trained.jsonl").read_text())

    assert start["written"] == 20
    assert trained["written"] == 20
    assert trained["implicit_reward_accuracy"]["accuracy"] > 0.5
    assert all("implicit_reward_chosen" in record for record in records)
    assert all("Overall score: 10." in record["prompt"] for record in records)


@pytest.mark.slow
def test_demo_figures(demo_run):
    out, _, _ = demo_run

    for name in ("metrics.png", "stats.png", "lengths.png", "labels.png", "heldout.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name


@pytest.mark.slow
def test_demo_report(demo_run):
    out, _, result = demo_run
    report = result.stdout
    trained = summary(out, "score-trained")
    accuracy = f"{100 * trained['implicit_reward_accuracy']['accuracy']:.1f}%"

    assert "Records per step" in report
    assert "convert             65       62         2" in report
    assert "Rejected records and why" in report
    assert "convert: no turns in chosen: 1, missing rejected: 1" in report
    assert "train.jsonl:45: field 'chosen'" in report
    assert "relabel-reward      38" in report
    assert "Model labels against the human labels (38 pairs, label-agreement.json)" in report
    assert f"Training ({TEST_STEPS} metrics lines, last step {TEST_STEPS}" in report
    assert "Held-out pairs (20)" in report
    assert accuracy in report


@pytest.mark.slow
def test_demo_rerun_is_noop(demo_run):
    out, data, _ = demo_run

    result = make(out, data)

    assert pfx_commands(result.stdout) == set()
    assert "Records per step" in result.stdout


@pytest.mark.slow
def test_demo_partial_rerun(demo_run):
    out, data, _ = demo_run
    metrics_before = (out / "metrics.jsonl").stat().st_mtime_ns
    os.utime(data / "heldout.jsonl")

    result = make(out, data)

    # Only the held-out branch reruns: convert, the overlap check (stats), the goal prompts, both scores
    # and the held-out figure.
    assert pfx_commands(result.stdout) == {"convert", "stats", "relabel-reward", "score", "plot"}
    assert (out / "metrics.jsonl").stat().st_mtime_ns == metrics_before


@pytest.mark.slow
def test_demo_rerun_after_steps_change(demo_run):
    out, data, _ = demo_run
    labels_before = (out / "labeled.jsonl").stat().st_mtime_ns

    result = make(out, data, f"STEPS={int(TEST_STEPS) + 2}")

    # Only the final training run and what depends on it rerun; the labeler and its labels stay.
    assert pfx_commands(result.stdout) == {"train-dpo", "score", "plot"}
    assert "rm -rf" in result.stdout
    assert summary(out, "train")["steps"] == int(TEST_STEPS) + 2
    assert (out / "labeled.jsonl").stat().st_mtime_ns == labels_before


def run_report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "demo" / "report.py"), *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("against", "expected_code", "message"), [
    ({"file": "heldout.jsonl", "records": 20, "overlapping_prompts": 0}, 0, ""),
    ({"file": "heldout.jsonl", "records": 20, "overlapping_prompts": 3}, 1,
     "prompts in both the training data and heldout.jsonl: 3"),
    ({"file": "heldout.jsonl", "records": 0, "overlapping_prompts": 0}, 1, "has no records"),
    (None, 1, "no 'against' section"),
])
def test_report_check_overlap(tmp_path, against, expected_code, message):
    stats = tmp_path / "overlap.json"
    stats.write_bytes(orjson.dumps({"records": 62, "against": against}))

    result = run_report("--check-overlap", str(stats))

    assert result.returncode == expected_code
    assert message in result.stderr


def test_report_sections_from_summaries(tmp_path):
    (tmp_path / "convert.summary.json").write_bytes(orjson.dumps(
        {"command": "convert", "read": 5, "written": 3, "rejected": 2, "rejected_by_reason": {"missing rejected": 2},
         "counts": {"dropped: tie": 0}}))
    (tmp_path / "convert.rejects.jsonl").write_text(
        '{"source": "in.jsonl", "line": 4, "reason": "missing field"}\n'
        '{"source": "in.jsonl", "line": 5, "reason": "missing field"}\n')
    (tmp_path / "judge.summary.json").write_bytes(orjson.dumps(
        {"command": "judge", "read": 3, "written": 3, "judge": {"win_rate": 0.5, "compared_both_orders": 0,
                                                                 "first_position_rate": 1.0, "replies": 3}}))
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(orjson.dumps({"step": step, "loss": 0.7 - 0.1 * step}).decode() + "\n"
                               for step in range(1, 7)))

    result = run_report(str(tmp_path), "convert", "judge", "missing-step", "--metrics", str(metrics))

    assert result.returncode == 0, result.stderr
    report = result.stdout
    assert "  convert              5        3         2" in report
    assert "missing-step" in report and "has not run" in report
    assert "    in.jsonl:4: missing field" in report
    assert "both orders agree n/a (one order)" in report
    assert "Training (6 metrics lines, last step 6" in report
    assert "loss                         0.600           0.300" in report  # mean of steps 2-6
