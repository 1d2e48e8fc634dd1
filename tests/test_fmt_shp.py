"""The shp reader: Stanford Human Preferences posts to pairs oriented by ``labels``."""

from __future__ import annotations

import pytest
from formats_support import FIXTURES, convert_file, convert_records

RECORD = {"post_id": "p", "history": "Which is better, tea or coffee?", "human_ref_A": "Tea.", "human_ref_B": "Coffee.",
          "score_A": 10, "score_B": 3, "labels": 1}


def test_shp_fixture_orientation():
    result = convert_file("shp", FIXTURES / "shp.jsonl")
    assert result.rejects == []
    first, second = result.records
    assert first["chosen"].startswith("Starch recrystallises")
    assert (first["score_chosen"], first["score_rejected"]) == (52, 7)
    assert first["meta"]["c_root_id_chosen"] == "c11"
    # labels 0: comment B is preferred.
    assert second["prompt"] == "Did people in the Middle Ages drink water?"
    assert second["chosen"].startswith("Yes. Water was drunk widely")
    assert second["rejected"] == "No, only beer."
    assert (second["score_chosen"], second["score_rejected"]) == (120, 4)
    assert second["meta"]["chosen_side"] == "B"
    assert second["meta"]["c_root_id_chosen"] == "c22"
    assert second["meta"]["post_id"] == "p2def"
    assert second["meta"]["domain"] == "askhistorians_train"


@pytest.mark.parametrize("change, reason", [
    ({"labels": 2}, "invalid labels"),
    ({"labels": True}, "invalid labels"),
    ({"labels": None}, "missing labels"),
    ({"human_ref_B": 5}, "invalid human_ref_B"),
    ({"history": None}, "missing history"),
])
def test_shp_bad_records(tmp_path, change, reason):
    result = convert_records("shp", [{**RECORD, **change}], tmp_path)
    assert result.records == []
    assert result.reasons == [reason]
