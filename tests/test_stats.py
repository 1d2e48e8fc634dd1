"""Tests of `pfx stats`: hand-built inputs with hand-computed numbers."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from conftest import to_jsonl
from pfx.stats.agreement import Agreement
from pfx.stats.measures import LengthDistribution, ScoreSummary, cohen_kappa, wilson_interval


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def stats(invoke, records, *args) -> dict:
    result = invoke(["stats", *args], input=to_jsonl(records))
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    return orjson.loads(lines[0])


MIXED = [
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Fish.", "score_chosen": 8, "score_rejected": 3},
    {"prompt": " Name a colour.", "chosen": "Red, like a tomato.", "rejected": "Red.", "score_chosen": 6, "score_rejected": 6},
    {"prompt": [user("Say hi.")], "chosen": [assistant("Hi!")], "rejected": [assistant("Hi!")]},
    {"prompt": "Count.", "completions": ["1 2 3", "", "3"], "scores": [9, 5, 5]},
    {"prompt": "Count.", "completion": "1 2", "label": False, "score": 2.5},
    {"prompt": "Tell a joke."},
]


# -- measures ---------------------------------------------------------------------


def test_wilson_interval_eight_of_ten():
    # p = 0.8, n = 10, z^2 = 3.8415: centre 0.99207 / 1.38415 = 0.71674,
    # half width 1.95996 * sqrt(0.016 + 0.0096037) / 1.38415 = 0.22658.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.490162, abs=1e-5)
    assert high == pytest.approx(0.943318, abs=1e-5)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(5, 5)
    assert high == 1.0
    assert low == pytest.approx(0.565508, abs=1e-5)  # 5 / (5 + z^2) = 5 / 8.8415


def test_kappa_known_table():
    # n = 100, p_o = 70 / 100; rows and columns 30, 20, 50, so
    # p_e = (900 + 400 + 2500) / 10000 = 0.38 and kappa = 0.32 / 0.62.
    table = [[20, 5, 5], [5, 10, 5], [5, 5, 40]]
    assert cohen_kappa(table) == pytest.approx(0.516129, abs=1e-6)


def test_kappa_perfect_and_empty():
    assert cohen_kappa([[3, 0, 0], [0, 2, 0], [0, 0, 1]]) == 1.0
    assert cohen_kappa([[0] * 3 for _ in range(3)]) is None
    assert cohen_kappa([[4, 0, 0], [0, 0, 0], [0, 0, 0]]) is None  # chance agreement is already 1


def test_length_distribution_nearest_rank():
    distribution = LengthDistribution()
    for length in [5, 1, 3, 2, 4, 10, 7, 8, 6, 9]:
        distribution.add(length)
    assert distribution.summary() == {"count": 10, "mean": 5.5, "min": 1, "p50": 5, "p90": 9, "p99": 10, "max": 10}


def test_score_summary_moments_and_values():
    summary = ScoreSummary()
    for value in [1, 3, 3, 5]:
        summary.add(value)
    # mean 3, population variance (4 + 0 + 0 + 4) / 4 = 2.
    assert summary.summary() == {"count": 4, "mean": 3.0, "std": pytest.approx(1.414214), "min": 1, "max": 5,
                                 "values": {"1": 1, "3": 2, "5": 1}}


def test_score_summary_stops_counting_many_values():
    summary = ScoreSummary()
    for value in range(ScoreSummary.MAX_DISTINCT + 1):
        summary.add(value / 7)
    assert summary.summary()["values"] is None
    assert summary.summary()["count"] == ScoreSummary.MAX_DISTINCT + 1


# -- the report ---------------------------------------------------------------------


def test_stats_counts_by_kind(invoke):
    report = stats(invoke, MIXED)
    assert report["records"] == 6
    assert report["kinds"] == {"pair": 3, "list": 1, "unpaired": 1, "prompt": 1}
    assert report["prompt_shapes"] == {"standard": 5, "conversational": 1}


def test_stats_ties_and_identical_pairs(invoke):
    report = stats(invoke, MIXED)
    assert report["ties"] == {"equal_scores": 1, "identical_answers": 1, "lists_with_tied_scores": 1}


def test_stats_empty_answers(invoke):
    records = [
        {"prompt": "", "chosen": "", "rejected": "No."},
        {"prompt": [], "chosen": [assistant("  ")], "rejected": "x"},
        *MIXED,
    ]
    report = stats(invoke, records)
    assert report["empty"] == {"prompt": 2, "chosen": 2, "rejected": 0, "completion": 0, "completions": 1}


def test_stats_duplicate_prompts(invoke):
    # " Name a colour." and "Name a colour." are one prompt after stripping; "Count." appears twice.
    report = stats(invoke, MIXED)
    assert report["prompts"] == {"distinct": 4, "duplicate_records": 2, "duplicated_prompts": 2}


def test_stats_character_lengths(invoke):
    report = stats(invoke, MIXED)
    # chosen: "Blue." 5, "Red, like a tomato." 19, "Hi!" 3 -> sorted 3, 5, 19.
    assert report["lengths"]["chosen"] == {"count": 3, "mean": 9.0, "min": 3, "p50": 5, "p90": 19, "p99": 19, "max": 19}
    assert report["lengths"]["completion"]["count"] == 1
    assert report["lengths"]["completions"]["count"] == 3
    assert report["token_lengths"] is None


def test_stats_length_bias_wilson(invoke):
    # 8 of 10 pairs with a longer chosen answer, plus one of equal length that is left out.
    records = [{"prompt": f"Q{i}", "chosen": "long answer", "rejected": "short"} for i in range(8)]
    records += [{"prompt": f"R{i}", "chosen": "short", "rejected": "long answer"} for i in range(2)]
    records += [{"prompt": "S", "chosen": "same", "rejected": "SAME"}]
    bias = stats(invoke, records)["length_bias"]
    assert bias["pairs"] == 11
    assert (bias["chosen_longer"], bias["rejected_longer"], bias["equal_length"]) == (8, 2, 1)
    assert bias["chosen_longer_share"] == 0.8
    assert bias["ci95"] == pytest.approx([0.490162, 0.943318], abs=1e-5)


def test_stats_scores_and_margins(invoke):
    records = [
        {"prompt": "a", "chosen": "x", "rejected": "y", "score_chosen": 8, "score_rejected": 3},
        {"prompt": "b", "chosen": "x", "rejected": "y", "score_chosen": 6, "score_rejected": 6},
        {"prompt": "c", "chosen": "x", "rejected": "y", "score_chosen": 4, "score_rejected": 7},
    ]
    scores = stats(invoke, records)["scores"]
    assert scores["chosen"]["values"] == {"4": 1, "6": 1, "8": 1}
    # margins 5, 0, -3: mean 2/3.
    assert scores["margin"]["mean"] == pytest.approx(0.666667)
    assert (scores["margin"]["min"], scores["margin"]["max"], scores["margin"]["negative"]) == (-3, 5, 1)
    assert scores["completion"] is None


def test_stats_unpaired_labels(invoke):
    report = stats(invoke, MIXED)
    assert report["labels"] == {"true": 0, "false": 1}
    assert report["scores"]["completion"]["mean"] == 2.5


def test_stats_judge_first_position(invoke):
    # A judge that always picks the answer shown first: asked in both orders, it is inconsistent every time.
    judge = {
        "model": "mock-first",
        "verdicts": [{"order": "AB", "winner": "A", "raw": "A"}, {"order": "BA", "winner": "A", "raw": "A"}],
        "winner": "tie",
        "consistent": False,
    }
    records = [{"prompt": "Give a synonym for 'quick'.", "chosen": "fast", "rejected": "rapid", "judge": judge}]
    report = stats(invoke, records)["judge"]
    assert report["records"] == 1
    assert report["winner"] == {"chosen": 0, "rejected": 0, "tie": 1, "None": 0}
    assert report["consistent"] == {"true": 0, "false": 1, "unknown": 0}
    assert report["verdicts"] == {"first": 2, "second": 0, "tie": 0, "null": 0}
    assert report["first_position_share"] == 1.0


def test_stats_judge_consistency_unknown(invoke):
    # pfx judge writes consistent: null when only one order was asked; that is neither true nor false.
    judge = {"verdicts": [{"order": "AB", "winner": "B", "raw": "B"}], "winner": "rejected", "consistent": None}
    records = [{"prompt": "p", "chosen": "a", "rejected": "b", "judge": judge}]
    assert stats(invoke, records)["judge"]["consistent"] == {"true": 0, "false": 0, "unknown": 1}


def test_stats_judge_absent_is_null(invoke):
    assert stats(invoke, MIXED)["judge"] is None


def test_stats_stable_keys(invoke):
    assert list(stats(invoke, [])) == [
        "records", "kinds", "prompt_shapes", "ties", "empty", "prompts", "lengths", "length_bias", "token_lengths",
        "token_length_bias", "scores", "labels", "judge", "against", "compare",
    ]


# -- against ----------------------------------------------------------------------------


def test_stats_against_overlap(invoke, tmp_path):
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(to_jsonl([
        {"prompt": "Count.", "chosen": "1", "rejected": "2"},
        {"prompt": "Name a colour.  ", "chosen": "1", "rejected": "2"},
        {"prompt": "Unseen question?", "chosen": "1", "rejected": "2"},
        {"prompt": "Unseen question?", "chosen": "3", "rejected": "2"},
    ]))
    against = stats(invoke, MIXED, "--against", str(test_file))["against"]
    assert against["records"] == 4
    assert against["distinct_prompts"] == 3
    # Input records 1, 2 (Name a colour.) and 4, 5 (Count.) overlap.
    assert against["overlapping_records"] == 4
    assert against["overlapping_prompts"] == 2
    assert against["share_of_input_records"] == pytest.approx(4 / 6, abs=1e-6)
    assert against["share_of_against_prompts"] == pytest.approx(2 / 3, abs=1e-6)
    assert against["examples"] == ["Name a colour.", "Count."]


def test_stats_against_bad_line(invoke, tmp_path):
    test_file = tmp_path / "test.jsonl"
    test_file.write_text('{"prompt": "a"}\n{not json\n')
    result = invoke(["stats", "--against", str(test_file)], input=to_jsonl(MIXED))
    assert result.exit_code == 65
    assert f"{test_file}:2:" in result.stderr
    assert "--against" in result.stderr


# -- compare ------------------------------------------------------------------------------


# Ratings: P1 scores a=3, b=3, c=1; P2 x=5, y=2.
RATINGS = [
    {"prompt": "P1", "completions": ["a", "b", "c"], "scores": [3, 3, 1]},
    {"prompt": "P2", "completions": ["x", "y"], "scores": [5, 2]},
]
# Rankings of the same pairs, stored in either order; P3 is not rated.
RANKINGS = [
    {"prompt": "P1", "chosen": "a", "rejected": "b"},
    {"prompt": "P1", "chosen": "c", "rejected": "a"},
    {"prompt": "P1", "chosen": "b", "rejected": "c", "score_chosen": 1, "score_rejected": 1},
    {"prompt": "P2", "chosen": "x", "rejected": "y"},
    {"prompt": "P3", "chosen": "p", "rejected": "q"},
]


def test_stats_compare_table_and_kappa(invoke, tmp_path):
    other = tmp_path / "rankings.jsonl"
    other.write_text(to_jsonl(RANKINGS))
    compare = stats(invoke, RATINGS, "--compare", str(other))["compare"]
    # First answers in text order: (a,b) ratings tie, rankings a wins -> row tie, column win.
    # (a,c): ratings win, rankings lose. (b,c): ratings win, rankings tie. (x,y): both win.
    assert compare["outcomes"] == ["win", "tie", "lose"]
    assert compare["table"] == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    # p_o = 1/4; rows 3, 1, 0 and columns 2, 1, 1 give p_e = 7/16; kappa = (1/4 - 7/16) / (9/16) = -1/3.
    assert compare["agreement"] == 0.25
    assert compare["kappa"] == pytest.approx(-1 / 3, abs=1e-6)
    assert compare["agreement_decided"] == 0.5
    assert compare["pairs"] == {
        "this": 4, "other": 5, "joined": 4, "only_this": 0, "only_other": 1,
        "duplicates_this": 0, "duplicates_other": 0, "conflicting_duplicates_other": 0,
    }


def test_stats_compare_is_symmetric_in_agreement(invoke, tmp_path):
    ratings = tmp_path / "ratings.jsonl"
    ratings.write_text(to_jsonl(RATINGS))
    compare = stats(invoke, RANKINGS, "--compare", str(ratings))["compare"]
    # Swapping the labelings transposes the table.
    assert compare["table"] == [[1, 1, 0], [1, 0, 0], [1, 0, 0]]
    assert compare["agreement"] == 0.25
    assert compare["pairs"]["only_this"] == 1


def test_stats_compare_join_by_id(invoke, tmp_path):
    this = [{"id": 1, "prompt": "Q (v1)", "chosen": "a", "rejected": "b"},
            {"id": 2, "prompt": "R", "chosen": "c", "rejected": "d", "judge": {"winner": None, "verdicts": []}}]
    other = tmp_path / "other.jsonl"
    other.write_text(to_jsonl([{"id": 1, "prompt": "Q (v2)", "chosen": "b", "rejected": "a"},
                               {"id": 2, "prompt": "R", "chosen": "c", "rejected": "d"}]))
    by_id = stats(invoke, this, "--compare", str(other), "--join", "id")["compare"]
    # Record 1 joins despite the edited prompt and disagrees; record 2's judge decided nothing.
    assert by_id["table"] == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert by_id["pairs"]["this"] == 1
    by_content = stats(invoke, this, "--compare", str(other))["compare"]
    assert by_content["pairs"]["joined"] == 0


def test_stats_compare_two_rating_lists(invoke, tmp_path):
    # Two raters score the same three answers; each list gives the pairs (a,b), (a,c), (b,c).
    other = tmp_path / "rater2.jsonl"
    other.write_text(to_jsonl([{"prompt": "P1", "completions": ["c", "b", "a"], "scores": [1, 2, 2]}]))
    compare = stats(invoke, [RATINGS[0]], "--compare", str(other))["compare"]
    # Rater 1 (a=3, b=3, c=1): tie, win, win. Rater 2 (a=2, b=2, c=1): tie, win, win.
    assert compare["table"] == [[2, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert compare["agreement"] == 1.0
    assert compare["kappa"] == 1.0


def test_stats_compare_duplicates_counted():
    agreement = Agreement()
    agreement.add_other({"prompt": "P", "chosen": "a", "rejected": "b"})
    agreement.add_other({"prompt": "P", "chosen": "b", "rejected": "a"})
    agreement.add({"prompt": "P", "chosen": "a", "rejected": "b"})
    agreement.add({"prompt": "P", "chosen": "a", "rejected": "b"})
    report = agreement.report("other.jsonl")
    assert report["pairs"]["duplicates_other"] == 1
    assert report["pairs"]["conflicting_duplicates_other"] == 1
    assert report["pairs"]["duplicates_this"] == 1
    assert report["table"][0][0] == 1


def test_stats_join_needs_compare(invoke):
    result = invoke(["stats", "--join", "id"], input="")
    assert result.exit_code == 2


# -- output and errors ----------------------------------------------------------------------


def test_stats_table_flag(invoke, tmp_path):
    other = tmp_path / "rankings.jsonl"
    other.write_text(to_jsonl(RANKINGS))
    result = invoke(["stats", "--table", "--compare", str(other)], input=to_jsonl(RATINGS))
    assert result.exit_code == 0
    assert "pfx stats" in result.stdout
    assert "Cohen's kappa -0.333" in result.stdout
    assert not result.stdout.lstrip().startswith("{")


def test_stats_output_file(invoke, tmp_path):
    out = tmp_path / "report.json"
    result = invoke(["stats", "-o", str(out)], input=to_jsonl(MIXED))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert orjson.loads(out.read_text())["records"] == 6


def test_stats_bad_record_exit_65(invoke):
    result = invoke(["stats"], input=to_jsonl([MIXED[0], {"prompt": "x", "chosen": 3, "rejected": "y"}]))
    assert result.exit_code == 65
    assert "<stdin>:2: field 'chosen'" in result.stderr
    assert result.stdout == ""


def test_stats_non_numeric_score_rejected(invoke):
    result = invoke(["stats"], input=to_jsonl([{"prompt": "p", "completion": "c", "label": True, "score": "high"}]))
    assert result.exit_code == 65
    assert "<stdin>:1: field 'score': expected a number, got 'high'" in result.stderr


def test_stats_skip_counts_rejects(invoke):
    result = invoke(["stats", "--on-error", "skip"], input=to_jsonl([MIXED[0], {"answer": "x"}]) + "{oops\n")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout)["records"] == 1
    assert "rejected 2" in result.stderr


# -- tokens and imports --------------------------------------------------------------------------


def test_stats_tokenizer_lengths(invoke, tiny_model):
    from transformers import AutoTokenizer

    path = tiny_model("gpt2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    records = [{"prompt": "Name a colour.", "chosen": "Blue is a colour.", "rejected": "Fish."}]
    report = stats(invoke, records, "--tokenizer", path)
    expected = len(tokenizer("Blue is a colour.", add_special_tokens=False)["input_ids"])
    assert report["token_lengths"]["chosen"]["max"] == expected
    assert report["token_lengths"]["tokenizer"] == path
    assert report["token_length_bias"]["chosen_longer"] == 1
    assert report["lengths"]["unit"] == "characters"


def test_stats_missing_tokenizer_is_runtime_error(invoke, tmp_path):
    result = invoke(["stats", "--tokenizer", str(tmp_path / "nothing")], input=to_jsonl(MIXED))
    assert result.exit_code == 1
    assert "cannot load a tokenizer" in result.stderr


def test_stats_imports_no_torch(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(to_jsonl(MIXED))
    code = (
        "import sys\n"
        "from pfx.cli import main\n"
        f"sys.argv = ['pfx', 'stats', '-o', {str(tmp_path / 'out.json')!r}, {str(data)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


# -- real data ---------------------------------------------------------------------------------------


def test_stats_compare_sparse_feedback(shared_data, tmp_path):
    from conftest import run_pfx

    folder = shared_data / "sparse-feedback" / "alpaca_generation"
    ratings, rankings = tmp_path / "ratings.jsonl", tmp_path / "rankings.jsonl"
    for name, source, target in (("ratings", "feedback_ratings_sample_generation.csv", ratings),
                                 ("rankings", "feedback_rankings_sample_generation.csv", rankings)):
        converted = run_pfx(["convert", "--from", f"sparse-feedback-{name}", "--ties", "keep", str(folder / source),
                             "-o", str(target)])
        assert converted.returncode == 0, converted.stderr.decode()[-2000:]
    result = run_pfx(["stats", "--compare", str(rankings), str(ratings)])
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    compare = orjson.loads(result.stdout)["compare"]
    table = compare["table"]
    # Counted from the CSV files directly: of 117 ranked pairs with both ratings, 2 compare a response
    # with itself, which the ratings list holds once, so 115 join. Among them the labelings agree on 64
    # (19 both tie), ratings tie where rankings decide on 18, rankings tie where ratings decide on 17,
    # and they are opposite on 16.
    assert compare["pairs"]["joined"] == 115
    assert table[0][0] + table[1][1] + table[2][2] == 64
    assert table[1][1] == 19
    assert table[1][0] + table[1][2] == 18
    assert table[0][1] + table[2][1] == 17
    assert table[0][2] + table[2][0] == 16
    assert compare["agreement"] == pytest.approx(64 / 115, abs=1e-6)
    assert compare["pairs"]["only_other"] == 3


def test_stats_help_examples_run():
    from help_examples import run_help_examples
    from pfx.commands.stats import command

    results = run_help_examples(command)
    assert len(results) >= 3
    for result in results:
        assert result.stdout.strip()


def test_stats_terminal_gets_json_and_tables(tmp_path):
    # On a terminal, stdout keeps the JSON object and the tables go to stderr.
    import os
    import pty

    from conftest import ROOT

    data = tmp_path / "in.jsonl"
    data.write_text(to_jsonl(MIXED))
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "pfx", "stats", str(data)], cwd=ROOT, stdout=follower,
                               stderr=subprocess.PIPE)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal reports EIO once the process has closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    stderr = process.communicate(timeout=60)[1].decode()
    os.close(leader)
    assert process.returncode == 0
    assert orjson.loads(b"".join(chunks).strip())["records"] == 6
    assert "pfx stats" in stderr
    assert "lengths in characters" in stderr


def test_stats_compare_judged_records(invoke, tmp_path):
    # A judge's winner decides: "rejected" makes the chosen answer lose.
    this = [{"prompt": "P", "chosen": "a", "rejected": "b", "judge": {"winner": "rejected", "verdicts": []}},
            {"prompt": "Q", "chosen": "c", "rejected": "d", "judge": {"winner": "tie", "verdicts": []}}]
    other = tmp_path / "other.jsonl"
    other.write_text(to_jsonl([{"prompt": "P", "chosen": "b", "rejected": "a"},
                               {"prompt": "Q", "chosen": "d", "rejected": "c"}]))
    compare = stats(invoke, this, "--compare", str(other))["compare"]
    # P: both prefer b, the second answer in text order (lose, lose). Q: judge tie, other prefers d (tie, lose).
    assert compare["table"] == [[0, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert compare["agreement"] == 0.5
