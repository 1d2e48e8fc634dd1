"""The peer baseline: split HH-RLHF prompts the way a TRL user would, with datasets and trl.

Usage: python datasets_convert.py INPUT.jsonl OUTPUT.jsonl [NUM_PROC]

Loads the JSONL file with ``datasets.load_dataset("json", ...)``, maps TRL's
``extract_prompt`` over it and writes JSONL. Note that for plain strings
``extract_prompt`` splits at the longest common character prefix, not at
whole turns, so its prompts differ from pfx's on records whose answers start
with the same characters.
"""

from __future__ import annotations

import sys

import datasets
from trl.data_utils import extract_prompt


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    num_proc = int(sys.argv[3]) if len(sys.argv) > 3 else None
    dataset = datasets.load_dataset("json", data_files=source, split="train")
    dataset = dataset.map(extract_prompt, num_proc=num_proc)
    dataset.to_json(target, lines=True)


if __name__ == "__main__":
    main()
