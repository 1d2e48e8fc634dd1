"""Measure the import and help-rendering work of `pfx --help` and `pfx convert --help`.

Each sample runs in a fresh interpreter and times, inside the process, the
import of pfx.cli plus rendering the help (not the interpreter's own start).
It also reports the wall time of the whole command and whether torch,
transformers or numpy were imported.

Usage: python bench/startup/measure.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TIMER = """
import io, json, sys, time
from contextlib import redirect_stdout
start = time.perf_counter()
from pfx.cli import cli
with redirect_stdout(io.StringIO()):
    try:
        cli.main(sys.argv[1:], standalone_mode=False)
    except SystemExit:
        pass
elapsed = time.perf_counter() - start
heavy = [name for name in ("torch", "transformers", "numpy") if name in sys.modules]
print(json.dumps({"seconds": elapsed, "heavy": heavy}))
"""

CASES = {"pfx --help": ["--help"], "pfx convert --help": ["convert", "--help"]}


def measure(args: list[str], runs: int) -> dict:
    in_process, wall, heavy = [], [], set()
    for _ in range(runs):
        output = subprocess.run([sys.executable, "-c", TIMER, *args], capture_output=True, text=True, check=True)
        sample = json.loads(output.stdout.strip().splitlines()[-1])
        in_process.append(sample["seconds"])
        heavy.update(sample["heavy"])

        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pfx", *args], capture_output=True, check=True)
        wall.append(time.perf_counter() - start)
    return {
        "in_process_median_ms": round(statistics.median(in_process) * 1000, 1),
        "in_process_max_ms": round(max(in_process) * 1000, 1),
        "wall_median_ms": round(statistics.median(wall) * 1000, 1),
        "heavy_modules_imported": sorted(heavy),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # Warm the bytecode cache first, so every sample measures the same work.
    subprocess.run([sys.executable, "-m", "pfx", "convert", "--help"], capture_output=True, check=True)
    results = {name: measure(case, args.runs) for name, case in CASES.items()}
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
