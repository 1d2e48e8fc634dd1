"""The peer of ``pfx stats``: the pandas script a researcher writes to look at pairs before training.

It loads the JSON Lines file into a DataFrame with the defaults of
``pandas.read_json(lines=True)``. Then it computes the core of pfx's report:
record count, ties (equal scores, identical answers), empty answers,
duplicate prompts, lengths in characters (mean, median, p90, max) and the
length bias with a 95% Wilson interval. Run it with the benchmark venv, which has pandas:

    .venv-bench/bin/python bench/relabel_stats/peer_stats.py IN.jsonl
"""

from __future__ import annotations

import json
import math
import sys

import pandas as pd

Z = 1.959963984540054


def text(value) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(message["content"] for message in value)


def main() -> None:
    frame = pd.read_json(sys.argv[1], lines=True)
    prompts = frame["prompt"].map(text)
    chosen = frame["chosen"].map(text)
    rejected = frame["rejected"].map(text)
    lengths = {name: column.str.len() for name, column in (("prompt", prompts), ("chosen", chosen), ("rejected", rejected))}
    longer = int((lengths["chosen"] > lengths["rejected"]).sum())
    decided = int((lengths["chosen"] != lengths["rejected"]).sum())
    p = longer / decided
    centre = (p + Z * Z / (2 * decided)) / (1 + Z * Z / decided)
    half = Z * math.sqrt(p * (1 - p) / decided + Z * Z / (4 * decided * decided)) / (1 + Z * Z / decided)
    report = {
        "records": len(frame),
        "equal_scores": int((frame["score_chosen"] == frame["score_rejected"]).sum()),
        "identical_answers": int((chosen == rejected).sum()),
        "empty_chosen": int((chosen.str.strip() == "").sum()),
        "duplicate_prompt_records": int(prompts.str.strip().duplicated().sum()),
        "lengths": {name: {"mean": float(column.mean()), "p50": float(column.median()), "p90": float(column.quantile(0.9)),
                           "max": int(column.max())} for name, column in lengths.items()},
        "chosen_longer_share": p,
        "ci95": [centre - half, centre + half],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
