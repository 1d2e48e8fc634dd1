"""Tests of `pfx plot`: real matplotlib figures, checked as PNG files."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import orjson
import pytest

from conftest import run_pfx, to_jsonl

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

METRICS = [
    {"step": step, "loss": 0.69 - 0.05 * step, "rewards/chosen": 0.1 * step, "rewards/rejected": -0.1 * step,
     "rewards/margins": 0.2 * step, "rewards/accuracies": min(1.0, 0.25 * step), "learning_rate": 1e-4 / step}
    for step in range(1, 6)
]
PAIRS = [
    {"prompt": "Name a fruit.", "chosen": "An apple is a fruit.", "rejected": "No."},
    {"prompt": [{"role": "user", "content": "Say hello."}], "chosen": [{"role": "assistant", "content": "Hello there!"}],
     "rejected": [{"role": "assistant", "content": "Go away, I am busy right now."}]},
    {"prompt": "What is 2 + 3?", "chosen": "5", "rejected": "It is 6, I think."},
]
SCORED = [dict(pair, score_chosen=1.5 - i, score_rejected=0.5 + i) for i, pair in enumerate(PAIRS)]


def png_size(path: Path) -> tuple[int, int]:
    """Return (width, height) from the IHDR chunk; fail unless the file starts like a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decoded_pixels(path: Path):
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text(to_jsonl(records))
    return path


def summary_of(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def test_plot_metrics_png(invoke, tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", METRICS)
    figure = tmp_path / "metrics.png"
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(metrics), "-o", str(figure), "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert result.stdout == ""
    width, height = png_size(figure)
    assert (width, height) == (1200, 800)  # 2 x 2 panels of 6 x 4 inches at 100 dpi
    assert decoded_pixels(figure).shape[:2] == (800, 1200)
    report = summary_of(summary)
    assert report["kind"] == "metrics"
    assert report["read"] == 5
    assert report["counts"] == {"plotted": 5}
    assert report["figure"] == str(figure)


def test_plot_metrics_loss_only(invoke, tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", [{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.6}])
    figure = tmp_path / "loss.png"

    result = invoke(["plot", str(metrics), "-o", str(figure)])

    assert result.exit_code == 0, result
    assert png_size(figure) == (600, 400)  # one panel


def test_plot_lengths_pairs(invoke, tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    figure = tmp_path / "lengths.png"
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(pairs), "-o", str(figure), "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert png_size(figure) == (1200, 400)  # lengths and length difference
    assert summary_of(summary)["kind"] == "lengths"


def test_plot_lengths_unpaired_and_list(invoke, tmp_path):
    records = [
        {"prompt": "Name a colour.", "completion": "Blue.", "label": True},
        {"prompt": "Name a colour.", "completion": "I will not.", "label": False},
        {"prompt": "Name a fruit.", "completions": ["Apple.", "A pear is a fruit.", "No."]},
    ]
    data = write_jsonl(tmp_path / "mixed.jsonl", records)
    figure = tmp_path / "lengths.png"

    result = invoke(["plot", str(data), "-o", str(figure)])

    assert result.exit_code == 0, result
    assert png_size(figure) == (600, 400)  # no pairs, so no difference panel


def test_plot_scores_pairs(invoke, tmp_path):
    scored = write_jsonl(tmp_path / "scored.jsonl", SCORED)
    figure = tmp_path / "scores.png"
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(scored), "-o", str(figure), "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert png_size(figure) == (1200, 400)
    assert summary_of(summary)["kind"] == "scores"


def test_plot_kind_overrides_auto(invoke, tmp_path):
    scored = write_jsonl(tmp_path / "scored.jsonl", SCORED)
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(scored), "--kind", "lengths", "-o", str(tmp_path / "l.png"), "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert summary_of(summary)["kind"] == "lengths"


def test_plot_stdin(invoke, tmp_path):
    figure = tmp_path / "stdin.png"

    result = invoke(["plot", "-o", str(figure)], input=to_jsonl(METRICS))

    assert result.exit_code == 0, result
    assert png_size(figure) == (1200, 800)


def test_plot_bad_metric_exit_65(invoke, tmp_path):
    records = [METRICS[0], {"step": 2, "loss": "high"}, METRICS[2]]
    metrics = write_jsonl(tmp_path / "metrics.jsonl", records)
    figure = tmp_path / "metrics.png"

    result = invoke(["plot", str(metrics), "-o", str(figure)])

    assert result.exit_code == 65
    assert f"{metrics}:2:" in result.stderr
    assert "field 'loss'" in result.stderr
    assert "'high'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not figure.exists()


def test_plot_missing_step_exit_65(invoke, tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", [METRICS[0], {"loss": 0.5}])

    result = invoke(["plot", str(metrics), "-o", str(tmp_path / "m.png")])

    assert result.exit_code == 65
    assert f"{metrics}:2: missing field 'step'" in result.stderr


def test_plot_invalid_json_exit_65(invoke, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(to_jsonl(METRICS[:2]) + '{"step": 3, "loss": \n')

    result = invoke(["plot", str(metrics), "-o", str(tmp_path / "m.png")])

    assert result.exit_code == 65
    assert f"{metrics}:3: invalid JSON" in result.stderr


def test_plot_bad_score_exit_65(invoke, tmp_path):
    records = [SCORED[0], dict(PAIRS[1], score_chosen=True, score_rejected=0.1)]
    scored = write_jsonl(tmp_path / "scored.jsonl", records)

    result = invoke(["plot", str(scored), "-o", str(tmp_path / "s.png")])

    assert result.exit_code == 65
    assert f"{scored}:2: field 'score_chosen': expected a number, got True" in result.stderr


def test_plot_mixed_kinds_exit_65(invoke, tmp_path):
    data = write_jsonl(tmp_path / "mixed.jsonl", [METRICS[0], PAIRS[0]])

    result = invoke(["plot", str(data), "-o", str(tmp_path / "m.png")])

    assert result.exit_code == 65
    assert f"{data}:2: missing field 'step'" in result.stderr


def test_plot_unknown_shape_exit_65(invoke, tmp_path):
    data = write_jsonl(tmp_path / "odd.jsonl", [{"name": "not a record"}])

    result = invoke(["plot", str(data), "-o", str(tmp_path / "odd.png")])

    assert result.exit_code == 65
    assert f"{data}:1: cannot tell what to plot" in result.stderr
    assert "pass --kind" in result.stderr


def test_plot_skip_writes_rejects(invoke, tmp_path):
    records = [METRICS[0], {"step": 2, "loss": "high"}, METRICS[2], {"step": 4}]
    metrics = write_jsonl(tmp_path / "metrics.jsonl", records)
    figure = tmp_path / "metrics.png"
    rejects = tmp_path / "rejects.jsonl"
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(metrics), "-o", str(figure), "--on-error", "skip", "--rejects", str(rejects),
                     "--summary", str(summary)])

    assert result.exit_code == 0, result
    png_size(figure)
    rejected = [orjson.loads(line) for line in rejects.read_text().splitlines()]
    assert [entry["line"] for entry in rejected] == [2, 4]
    assert rejected[0]["field"] == "loss"
    report = summary_of(summary)
    assert report["read"] == 4
    assert report["rejected"] == 2
    assert report["counts"] == {"plotted": 2}


def test_plot_empty_input_warns(invoke, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    figure = tmp_path / "empty.png"

    result = invoke(["plot", str(empty), "-o", str(figure)])

    assert result.exit_code == 0, result
    assert "no records to plot" in result.stderr
    assert png_size(figure) == (600, 400)


def test_plot_output_required(invoke, tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", METRICS)

    result = invoke(["plot", str(metrics)])

    assert result.exit_code == 2
    assert "Missing option '-o'" in result.stderr


@pytest.mark.parametrize("output", ["plot.jpg", "-"])
def test_plot_output_not_png(invoke, tmp_path, output):
    # The input is not valid JSON: the usage error must come before any input is read.
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    result = invoke(["plot", str(broken), "-o", output])

    assert result.exit_code == 2
    assert "-o must name a .png file" in result.stderr


def test_plot_failure_keeps_previous_png(invoke, tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", METRICS)
    figure = tmp_path / "metrics.png"
    assert invoke(["plot", str(metrics), "-o", str(figure)]).exit_code == 0
    before = figure.read_bytes()
    broken = write_jsonl(tmp_path / "broken.jsonl", [{"step": 1, "loss": [0.5]}])

    result = invoke(["plot", str(broken), "-o", str(figure)])

    assert result.exit_code == 65
    assert figure.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jsonl", "metrics.jsonl", "metrics.png"]


def test_plot_missing_matplotlib(invoke, tmp_path, monkeypatch):
    # A None entry in sys.modules makes `import matplotlib` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    metrics = write_jsonl(tmp_path / "metrics.jsonl", METRICS)

    result = invoke(["plot", str(metrics), "-o", str(tmp_path / "m.png")])

    assert result.exit_code == 1
    assert "matplotlib is not installed" in result.stderr
    assert "pip install 'pfx[plot]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_plot_imports_no_torch(tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", METRICS)

    result = run_pfx(["plot", str(metrics), "-o", str(tmp_path / "m.png")], env={"PYTHONPROFILEIMPORTTIME": "1"})

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    imported = [line.split("|")[-1].strip() for line in result.stderr.decode().splitlines() if line.startswith("import time:")]
    assert "matplotlib" in imported
    assert "torch" not in imported
    assert "transformers" not in imported


def stats_object(**changes) -> dict:
    """A pfx stats object of three pairs with scores, in the shape `pfx stats` prints."""
    length = {"count": 3, "mean": 20.0, "min": 2, "p50": 18, "p90": 40, "p99": 40, "max": 40}
    stats = {
        "records": 3,
        "kinds": {"pair": 3, "list": 0, "unpaired": 0, "prompt": 0},
        "lengths": {"unit": "characters", "prompt": length, "chosen": length, "rejected": length,
                    "completion": None, "completions": None},
        "length_bias": {"unit": "characters", "pairs": 3, "chosen_longer": 2, "rejected_longer": 1, "equal_length": 0,
                        "chosen_longer_share": 0.666667, "ci95": [0.2, 0.94]},
        "scores": {"chosen": {"count": 3, "mean": 1.5, "values": {"0.5": 1, "1.5": 1, "2.5": 1}},
                   "rejected": {"count": 3, "mean": 1.5, "values": {"1.5": 3}},
                   "margin": {"count": 3, "mean": 0.0, "values": {"-1": 1, "0": 1, "1": 1}, "negative": 1},
                   "completion": None, "list": None},
    }
    stats.update(changes)
    return stats


def test_plot_stats_object(invoke, tmp_path):
    stats = tmp_path / "stats.json"
    stats.write_bytes(orjson.dumps(stats_object()))
    figure = tmp_path / "stats.png"
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(stats), "-o", str(figure), "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert png_size(figure) == (1200, 800)  # lengths, length bias, scores, margins
    assert summary_of(summary)["kind"] == "stats"


def test_plot_stats_without_scores(invoke, tmp_path):
    stats = tmp_path / "stats.json"
    stats.write_bytes(orjson.dumps(stats_object(scores={"chosen": None, "rejected": None, "margin": None})))
    figure = tmp_path / "stats.png"

    result = invoke(["plot", str(stats), "-o", str(figure)])

    assert result.exit_code == 0, result
    assert png_size(figure) == (1200, 400)  # lengths and length bias


def test_plot_stats_bad_length_exit_65(invoke, tmp_path):
    broken = stats_object()
    broken["lengths"]["chosen"] = dict(broken["lengths"]["chosen"], p90="forty")
    stats = write_jsonl(tmp_path / "stats.jsonl", [broken])

    result = invoke(["plot", str(stats), "-o", str(tmp_path / "stats.png")])

    assert result.exit_code == 65
    assert f"{stats}:1: field 'lengths.chosen.p90': expected a number, got 'forty'" in result.stderr


def test_plot_stats_second_object_exit_65(invoke, tmp_path):
    stats = write_jsonl(tmp_path / "stats.jsonl", [stats_object(), stats_object()])

    result = invoke(["plot", str(stats), "-o", str(tmp_path / "stats.png")])

    assert result.exit_code == 65
    assert f"{stats}:2: a stats plot draws one pfx stats object" in result.stderr


def test_plot_real_hh_rlhf(invoke, tmp_path, shared_data):
    """Plot the pairs and the pfx stats object of the first 200 real HH-RLHF records."""
    pairs = tmp_path / "pairs.jsonl"
    stats = tmp_path / "stats.json"
    source = shared_data / "hh-rlhf" / "harmless-base" / "test.first200.jsonl"
    assert invoke(["convert", str(source), "-o", str(pairs)]).exit_code == 0
    stats_result = invoke(["stats", str(pairs)])
    assert stats_result.exit_code == 0, stats_result
    stats.write_text(stats_result.stdout)

    lengths = invoke(["plot", str(pairs), "-o", str(tmp_path / "lengths.png")])
    overview = invoke(["plot", str(stats), "-o", str(tmp_path / "stats.png")])

    assert lengths.exit_code == 0, lengths
    assert "plotted: 200" in lengths.stderr
    assert png_size(tmp_path / "lengths.png") == (1200, 400)
    assert overview.exit_code == 0, overview
    assert png_size(tmp_path / "stats.png") == (1200, 400)


def test_plot_side_outputs_create_directories(invoke, tmp_path):
    # Make targets write --rejects and --summary under build/ before anything else exists there.
    records = [METRICS[0], {"step": 2, "loss": "high"}]
    metrics = write_jsonl(tmp_path / "metrics.jsonl", records)
    rejects = tmp_path / "new" / "rejects.jsonl"
    summary = tmp_path / "other" / "summary.json"

    result = invoke(["plot", str(metrics), "-o", str(tmp_path / "m.png"), "--on-error", "skip", "--rejects",
                     str(rejects), "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert len(rejects.read_text().splitlines()) == 1
    assert summary_of(summary)["rejected"] == 1


def test_plot_help_examples_run():
    from help_examples import run_help_examples
    from pfx.commands.plot import command

    results = run_help_examples(command)

    assert len(results) == 4
    for figure in ("metrics", "stats", "scores", "lengths"):
        assert png_size(Path(f"/tmp/{figure}.png"))[0] > 0


def test_plot_counts_null_metrics(invoke, tmp_path):
    # train-dpo writes null for a non-finite value; the figure cannot show it, so the summary counts it.
    records = [METRICS[0], dict(METRICS[1], loss=None, grad_norm=None), METRICS[2]]
    metrics = write_jsonl(tmp_path / "metrics.jsonl", records)
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(metrics), "-o", str(tmp_path / "m.png"), "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert summary_of(summary)["counts"] == {"plotted": 3, "null loss (not drawn)": 1, "null grad_norm (not drawn)": 1}
    assert "null loss (not drawn): 1" in result.stderr


def test_plot_metrics_two_runs(invoke, tmp_path):
    # Two runs restart at step 1; each file must stay its own line instead of one line zigzagging between them.
    first = write_jsonl(tmp_path / "first.jsonl", METRICS)
    second = write_jsonl(tmp_path / "second.jsonl", [dict(record, loss=record["loss"] / 2) for record in METRICS])
    figure = tmp_path / "runs.png"

    result = invoke(["plot", str(first), str(second), "-o", str(figure)])

    assert result.exit_code == 0, result
    assert "plotted: 10" in result.stderr
    assert png_size(figure) == (1200, 800)


def test_metrics_plot_keeps_runs_apart():
    from pfx.plotting import MetricsPlot

    plot = MetricsPlot()
    for source in ("a.jsonl", "b.jsonl"):
        for record in METRICS[:2]:
            plot.add(record, source)

    assert plot.sources == ["a.jsonl", "b.jsonl"]
    assert [step for step, _ in plot.series["loss"]["a.jsonl"]] == [1, 2]
    assert [step for step, _ in plot.series["loss"]["b.jsonl"]] == [1, 2]


def logps(total: float, tokens: int) -> dict:
    return {"sum": total, "mean": total / tokens, "tokens": tokens}


# The fields pfx score --implicit adds to a pair: implicit rewards, and the log-probs behind them.
IMPLICIT_SCORED = [
    dict(PAIRS[0], logps_chosen=logps(-12.0, 6), logps_rejected=logps(-3.0, 2), implicit_reward_chosen=0.4,
         implicit_reward_rejected=-0.1),
    dict(PAIRS[2], logps_chosen=logps(-2.0, 1), logps_rejected=logps(-9.0, 5), implicit_reward_chosen=-0.2,
         implicit_reward_rejected=0.3),
]


def test_plot_scores_implicit_reward(invoke, tmp_path):
    scored = write_jsonl(tmp_path / "scored.jsonl", IMPLICIT_SCORED)
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(scored), "-o", str(tmp_path / "s.png"), "--summary", str(summary)])

    assert result.exit_code == 0, result
    report = summary_of(summary)
    assert report["kind"] == "scores"
    assert report["score_field"] == "implicit_reward"
    assert png_size(tmp_path / "s.png") == (1200, 400)


@pytest.mark.parametrize("field_name", ["logps", "logps.mean"])
def test_plot_scores_logps(invoke, tmp_path, field_name):
    scored = write_jsonl(tmp_path / "scored.jsonl", IMPLICIT_SCORED)
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(scored), "--score-field", field_name, "-o", str(tmp_path / "s.png"),
                     "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert summary_of(summary)["score_field"] == field_name


def test_scores_plot_logps_values():
    from pfx.plotting import ScoresPlot

    summed, mean = ScoresPlot(field_name="logps"), ScoresPlot(field_name="logps.mean")
    for record in IMPLICIT_SCORED:
        summed.add(record)
        mean.add(record)

    assert summed.scores == {("", "chosen"): [-12.0, -2.0], ("", "rejected"): [-3.0, -9.0]}
    assert summed.margins == {"": [-9.0, 7.0]}
    assert mean.scores == {("", "chosen"): [-2.0, -2.0], ("", "rejected"): [-1.5, -1.8]}


def test_plot_scores_bad_logps_exit_65(invoke, tmp_path):
    broken = dict(IMPLICIT_SCORED[1], logps_rejected=-9.0)
    scored = write_jsonl(tmp_path / "scored.jsonl", [IMPLICIT_SCORED[0], broken])

    result = invoke(["plot", str(scored), "--score-field", "logps", "-o", str(tmp_path / "s.png")])

    assert result.exit_code == 65
    assert f"{scored}:2: field 'logps_rejected': expected an object or null, got -9.0" in result.stderr


def test_plot_scores_unpaired_and_list(invoke, tmp_path):
    records = [
        {"prompt": "Name a colour.", "completion": "Blue.", "label": True, "score": 1.5},
        {"prompt": "Name a colour.", "completion": "No.", "label": False, "score": -0.5},
        {"prompt": "Name a fruit.", "completions": ["Apple.", "A pear.", "No."], "scores": [2.0, None, -1.0]},
    ]
    scored = write_jsonl(tmp_path / "scored.jsonl", records)
    summary = tmp_path / "summary.json"

    result = invoke(["plot", str(scored), "-o", str(tmp_path / "s.png"), "--summary", str(summary)])

    assert result.exit_code == 0, result
    assert summary_of(summary)["score_field"] == "score"
    assert png_size(tmp_path / "s.png") == (600, 400)  # no pairs, so no margin panel


def test_plot_scores_missing_side_exit_65(invoke, tmp_path):
    records = [SCORED[0], dict(PAIRS[1], score_chosen=0.5)]
    scored = write_jsonl(tmp_path / "scored.jsonl", records)

    result = invoke(["plot", str(scored), "-o", str(tmp_path / "s.png")])

    assert result.exit_code == 65
    assert f"{scored}:2: missing field 'score_rejected'" in result.stderr


def test_plot_lengths_two_files(invoke, tmp_path):
    first = write_jsonl(tmp_path / "human.jsonl", PAIRS)
    second = write_jsonl(tmp_path / "judged.jsonl", [dict(pair, chosen=pair["rejected"], rejected=pair["chosen"])
                                                      for pair in PAIRS])

    result = invoke(["plot", str(first), str(second), "-o", str(tmp_path / "l.png")])

    assert result.exit_code == 0, result
    assert "plotted: 6" in result.stderr
    assert png_size(tmp_path / "l.png") == (1200, 400)


def test_histogram_labels_name_files():
    from pfx.plotting import LengthsPlot, _by_label

    plot = LengthsPlot()
    plot.add(PAIRS[0], "runs/a/pairs.jsonl")
    plot.add(PAIRS[2], "runs/b/judged.jsonl")
    alone = LengthsPlot()
    alone.add(PAIRS[0], "pairs.jsonl")

    assert list(_by_label(plot.lengths)) == ["pairs.jsonl: chosen", "pairs.jsonl: rejected", "judged.jsonl: chosen",
                                             "judged.jsonl: rejected"]
    assert list(_by_label(plot.differences)) == ["pairs.jsonl", "judged.jsonl"]
    assert list(_by_label(alone.lengths)) == ["chosen", "rejected"]
    assert list(_by_label(alone.differences)) == ["pairs"]
