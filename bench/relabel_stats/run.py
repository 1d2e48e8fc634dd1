"""Benchmark ``pfx relabel-reward`` and ``pfx stats`` against their peers on the same inputs, in one run.

    .venv/bin/python bench/relabel_stats/run.py [SIZE ...]     (default: 50000 200000)

For each size it builds the input (make_input.py), then times each command
and reads its peak resident memory from the kernel (``os.wait4``). Peers run
in ``.venv-bench``: the authors' ``datasets`` relabeling (peer_relabel.py)
and a pandas stats script (peer_stats.py). Outputs go to bench/out/relabel_stats/;
the table goes to stdout and the figures to bench/out/relabel_stats/results.json.
CPU time is reported beside wall time because on a shared machine the wall
time also measures the other processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT = ROOT / "bench" / "out" / "relabel_stats"
PFX = [str(ROOT / ".venv" / "bin" / "python"), "-m", "pfx"]
BENCH_PYTHON = str(ROOT / ".venv-bench" / "bin" / "python")
# The peers must not reach the network, and their datasets cache stays under bench/out.
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(OUT / "hf-cache"),
           "TQDM_DISABLE": "1"}


def measure(name: str, command: list[str], records: int, env: dict[str, str] | None = None) -> dict:
    """Run one command to completion and return its wall and CPU time, records/s and peak RSS."""
    shutil.rmtree(OUT / "hf-cache", ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait4 returns the resource usage of this child and of the workers it reaped. On Linux
    # ru_maxrss is the peak of the largest single process, in KiB, not a sum over workers.
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{stderr[-2000:]}")
    cpu_seconds = usage.ru_utime + usage.ru_stime
    return {"name": name, "records": records, "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
            "records_per_second": round(records / seconds), "records_per_cpu_second": round(records / cpu_seconds),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "command": " ".join(command)}


def runs_for(size: int) -> list[tuple[str, list[str], dict[str, str] | None]]:
    pairs = str(OUT / f"pairs-{size}.jsonl")
    return [
        ("pfx relabel-reward (default: drop ties, interleave)",
         [*PFX, "relabel-reward", "--quiet", "--scale", "1:10", pairs, "-o", str(OUT / f"pfx-default-{size}.jsonl")], None),
        ("pfx relabel-reward --ties keep --order grouped (the authors' output)",
         [*PFX, "relabel-reward", "--quiet", "--scale", "1:10", "--ties", "keep", "--order", "grouped", pairs,
          "-o", str(OUT / f"pfx-grouped-{size}.jsonl")], None),
        ("peer: datasets map, authors' settings (num_proc default)",
         [BENCH_PYTHON, str(HERE / "peer_relabel.py"), pairs, str(OUT / f"peer-{size}.jsonl")], OFFLINE),
        ("peer: datasets map, num_proc=2",
         [BENCH_PYTHON, str(HERE / "peer_relabel.py"), pairs, str(OUT / f"peer2-{size}.jsonl"), "2"], OFFLINE),
        ("pfx stats", [*PFX, "stats", "--quiet", pairs, "-o", str(OUT / f"stats-{size}.json")], None),
        ("peer: pandas stats script", [BENCH_PYTHON, str(HERE / "peer_stats.py"), pairs], None),
    ]


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [50_000, 200_000]
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    print("| records | command | wall s | records/s | CPU s | records/CPU s | peak RSS MiB |", flush=True)
    print("|---|---|---|---|---|---|---|", flush=True)
    results = []
    for size in sizes:
        pairs = OUT / f"pairs-{size}.jsonl"
        if not pairs.exists():
            subprocess.run([*PFX[:1], str(HERE / "make_input.py"), str(size), str(pairs)], cwd=ROOT, check=True)
        for name, command, env in runs_for(size):
            result = measure(name, command, size, env)
            results.append(result)
            print(f"| {size:,} | {name} | {result['seconds']} | {result['records_per_second']:,} | "
                  f"{result['cpu_seconds']} | {result['records_per_cpu_second']:,} | {result['peak_rss_mib']} |",
                  flush=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
