"""Write N scored conversational pairs for the relabel-reward and stats benchmark.

The pairs are the hh-rlhf harmless-base test split (converted with
``pfx convert --style conversational``) repeated to N records. Each copy
gets a unique id and a unique first user turn, so prompts do not repeat, and
stand-in scores on 1..10 (about one pair in ten is a tie).

    .venv/bin/python bench/relabel_stats/make_input.py 200000 bench/out/relabel_stats/pairs-200000.jsonl
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
HH_RLHF = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"


def base_pairs() -> list[dict]:
    converted = subprocess.run(
        [sys.executable, "-m", "pfx", "convert", "--quiet", "--style", "conversational", str(HH_RLHF)],
        check=True, capture_output=True,
    )
    pairs = [orjson.loads(line) for line in converted.stdout.splitlines()]
    # Keep only the fields both tools read, so the peer's Arrow schema stays simple.
    return [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs if p["prompt"]]


def main() -> None:
    count, path = int(sys.argv[1]), sys.argv[2]
    pairs = base_pairs()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as handle:
        for index in range(count):
            pair = pairs[index % len(pairs)]
            copy = index // len(pairs)
            prompt = [dict(message) for message in pair["prompt"]]
            if copy:
                prompt[0]["content"] = f"{prompt[0]['content']} (copy {copy})"
            score_chosen = float(5 + index % 6)  # 5..10, floats as in UltraFeedback's overall_score
            score_rejected = score_chosen - index % 10 * 0.5  # equal in one pair of ten
            record = {"id": index, "prompt": prompt, "chosen": pair["chosen"], "rejected": pair["rejected"],
                      "score_chosen": score_chosen, "score_rejected": max(1.0, score_rejected)}
            handle.write(orjson.dumps(record) + b"\n")


if __name__ == "__main__":
    main()
