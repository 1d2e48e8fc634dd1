"""The sparse-feedback readers: header-less ratings and rankings CSV files to lists and pairs."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
from formats_support import FIXTURES, convert_file, convert_paths

FEEDBACK = "sparse-feedback/alpaca_generation/feedback_{}_sample_generation.csv"
INFERENCE = "sparse-feedback/inference_model_outputs/feedback_{}.csv"
LIBRARY_PROMPT = ("Summarise the passage in one sentence.\n\nPassage: The village library opened in 1902 and "
                  "still lends books,\nmaps and bicycles.")


def csv_rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_ratings_fixture_groups_and_counts():
    result = convert_file("sparse-feedback-ratings", FIXTURES / "sparse_feedback_ratings.csv")
    assert result.rejects == []
    first, second = result.records
    # The first CSV row is data, not a header, and comes back as the first completion.
    assert first["prompt"] == LIBRARY_PROMPT
    assert first["completions"] == ["The village library, open since 1902, lends books, maps and bicycles.",
                                    "A library.", "The library lends bicycles."]
    assert first["scores"] == [7, 3, 5]
    assert first["meta"]["score_scale"] == [1, 7]
    assert second["prompt"] == "Suggest a name for a bakery."
    assert second["scores"] == [6, 6]
    assert second["meta"]["input"] == "nan"
    # 6 rows = 5 completions in 2 lists + 1 repeated response whose second rating is dropped.
    assert result.counts == {"added: first CSV row read as data": 1, "dropped: repeated response rating": 1,
                             "input nan read as empty": 2}
    assert result.books_balance


def test_rankings_fixture_orientation_and_tie():
    result = convert_file("sparse-feedback-rankings", FIXTURES / "sparse_feedback_rankings.csv")
    assert result.rejects == []
    first, second, third = result.records
    assert first["prompt"] == LIBRARY_PROMPT
    assert first["chosen"].startswith("The village library, open since 1902")
    assert first["rejected"] == "A library."
    assert (second["chosen"], second["rejected"]) == ("The library lends bicycles.", "A library.")
    assert third == {
        "prompt": "Suggest a name for a bakery.",
        "chosen": "Rise and Shine Bakery",
        "rejected": "Bread Place",
        "confidence": 0.5,
        "meta": {"format": "sparse-feedback-rankings", "ranking": "equal", "input": "nan", "tie": True},
    }


def test_rankings_with_header_row(tmp_path):
    path = write_csv(tmp_path / "ranked.csv", [
        ["instruction", "input", "response1", "response2", "ranking"],
        ["Pick a colour.", "", "Blue.", "Seven.", "(a)"],
    ])
    result = convert_file("sparse-feedback-rankings", path)
    assert len(result.records) == 1
    assert result.records[0]["prompt"] == "Pick a colour."
    assert result.records[0]["chosen"] == "Blue."


def test_rankings_bad_rows(tmp_path):
    path = write_csv(tmp_path / "ranked.csv", [
        ["Pick a colour.", "", "Blue.", "Seven.", "(a)"],
        ["Pick a colour.", "", "Red.", "Nine.", "(c)"],
        ["Pick a colour.", "", "Red."],
    ])
    result = convert_file("sparse-feedback-rankings", path)
    assert len(result.records) == 1
    assert [line for line, _ in result.rejects] == [2, 3]
    assert result.reasons == ["invalid ranking", "wrong number of cells"]


def test_ratings_bad_rows(tmp_path):
    path = write_csv(tmp_path / "rated.csv", [
        ["Pick a colour.", "", "Blue.", "6"],
        ["Pick a colour.", "", "Seven.", "9"],
        ["Pick a colour.", "", "Red.", "good"],
        ["Pick a colour.", "", "Green.", "2"],
        ["Name a dog.", "", "Rex.", "5"],
    ])
    result = convert_file("sparse-feedback-ratings", path)
    assert result.records[0]["completions"] == ["Blue.", "Green."]
    assert [line for line, _ in result.rejects] == [2, 3, 5]
    assert result.reasons == ["invalid rating", "invalid rating", "single response for prompt"]


def test_ratings_real_file(shared_data):
    path = shared_data / FEEDBACK.format("ratings")
    rows = csv_rows(path)
    result = convert_file("sparse-feedback-ratings", path)
    assert result.rejects == []
    assert len(result.records) == 20
    assert result.counts == {"added: first CSV row read as data": 1, "dropped: repeated response rating": 2}
    assert sum(len(record["completions"]) for record in result.records) == 97
    assert result.books_balance
    # Every rating matches its CSV row; the first rating of a repeated response is kept.
    first_rating = {}
    for instruction, extra_input, response, rating in rows:
        first_rating.setdefault((instruction, extra_input, response), int(rating))
    for record in result.records:
        instruction, _, _ = record["prompt"].partition("\n\n")
        for response, score in zip(record["completions"], record["scores"]):
            assert first_rating[(instruction, record["meta"]["input"], response)] == score


def test_rankings_real_file(shared_data):
    path = shared_data / FEEDBACK.format("rankings")
    rows = csv_rows(path)
    result = convert_file("sparse-feedback-rankings", path)
    assert result.rejects == []
    assert len(result.records) == len(rows) == 118
    assert result.books_balance
    assert Counter(record["meta"]["ranking"] for record in result.records) == {"(b)": 43, "equal": 38, "(a)": 37}
    assert sum(1 for record in result.records if record["meta"].get("tie")) == 38
    for row, record in zip(rows, result.records):
        preferred = row[3] if row[4] == "(b)" else row[2]
        assert record["chosen"] == preferred
    assert sum(1 for record in result.records if record["chosen"] == record["rejected"]) == 2


def test_ratings_real_single_generator_file(shared_data):
    # One response per instruction: no list can be built, and every row is rejected with the reason.
    result = convert_file("sparse-feedback-ratings", shared_data / INFERENCE.format("ratings_davinci_for_llm_eval"))
    assert result.records == []
    assert Counter(result.reasons) == {"single response for prompt": 53}


def test_ratings_real_files_grouped_across_files(shared_data):
    paths = [shared_data / INFERENCE.format(name)
             for name in ("ratings_davinci_for_llm_eval", "ratings_ratings_for_llm_eval")]
    result = convert_paths("sparse-feedback-ratings", paths)
    assert len(result.records) == 51
    assert all(len(record["completions"]) == 2 for record in result.records)
    assert all(not record["prompt"].endswith("nan") for record in result.records)
    # 53 + 83 rows = 51 lists of 2 + 34 instructions rated in only one file.
    assert result.counts == {"added: first CSV row read as data": 2, "input nan read as empty": 136}
    assert len(result.rejects) == 34
    assert result.books_balance


def test_rankings_real_davinci_file(shared_data):
    path = shared_data / INFERENCE.format("rankings_davincivsratings_for_llm_eval")
    result = convert_file("sparse-feedback-rankings", path)
    assert result.rejects == []
    assert len(result.records) == 46
    assert result.counts == {"added: first CSV row read as data": 1, "input nan read as empty": 46}
    assert result.books_balance
