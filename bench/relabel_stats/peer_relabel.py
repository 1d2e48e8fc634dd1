"""The peer of ``pfx relabel-reward``: reward-augmented relabeling the way the method's authors wrote it.

It does what scripts/reward_augmentation.py in shenao-zhang/reward-augmented-preference
does. It loads the pairs with Hugging Face ``datasets`` and maps a kept-label
copy and a swapped copy, each with the goal as a system message. Then it
concatenates the two (kept half first, ties kept) and writes JSON Lines. Run it with the
benchmark venv, which has ``datasets``:

    .venv-bench/bin/python bench/relabel_stats/peer_relabel.py IN.jsonl OUT.jsonl [NUM_PROC]

NUM_PROC left out is the ``datasets.map`` default (one process), as in the
authors' script.
"""

from __future__ import annotations

import sys

from datasets import concatenate_datasets, load_dataset

HEADER = (
    "You are an assistant that generates responses for the instruction while implicitly achieving the following "
    "target scores (on a scale of 1-10, where 1 is lowest and 10 is highest):"
)


def goal_message(score: float) -> dict:
    text = int(score) if int(score) == score else score
    return {"role": "system", "content": f"{HEADER}\nOverall score: {text}."}


def kept(example: dict) -> dict:
    return {"prompt": [goal_message(example["score_chosen"]), *example["prompt"]]}


def swapped(example: dict) -> dict:
    return {
        "prompt": [goal_message(example["score_rejected"]), *example["prompt"]],
        "chosen": example["rejected"],
        "rejected": example["chosen"],
        "score_chosen": example["score_rejected"],
        "score_rejected": example["score_chosen"],
    }


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    num_proc = int(sys.argv[3]) if len(sys.argv) > 3 else None
    pairs = load_dataset("json", data_files=source, split="train")
    both = concatenate_datasets([pairs.map(kept, num_proc=num_proc), pairs.map(swapped, num_proc=num_proc)])
    both.to_json(target, lines=True)


if __name__ == "__main__":
    main()
