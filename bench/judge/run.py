"""Benchmark ``pfx judge`` against the test stub server on 127.0.0.1: concurrency, cache and per-request overhead.

Usage (from the repository root): ``.venv/bin/python bench/judge/run.py``

The stub answers every request after a fixed delay, standing in for a judge
server's latency. Each run is a real ``pfx judge`` subprocess with a fresh
cache directory; the cached rerun reuses the cache of the concurrency-8 run.
Raw figures go to bench/out/judge/results.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from openai_stub import StubServer, keyword, slow  # noqa: E402

PAIRS_WITH_LATENCY = 100  # 200 requests at 100 ms each
PAIRS_NO_LATENCY = 500  # 1000 requests answered at once


def write_pairs(path: str, count: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            pair = {"id": f"p{i}", "prompt": f"What is {i} + {i}?", "chosen": f"GOOD {2 * i}", "rejected": f"{2 * i + 1}"}
            handle.write(json.dumps(pair) + "\n")


def timed_judge(url: str, source: str, cache: str, concurrency: int) -> float:
    command = [sys.executable, "-m", "pfx", "judge", "--api-base", url, "--model", "stub", "--cache", cache,
               "--concurrency", str(concurrency), "-o", os.devnull, "-q", source]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as work:
        slow_source = os.path.join(work, "pairs-100.jsonl")
        fast_source = os.path.join(work, "pairs-500.jsonl")
        write_pairs(slow_source, PAIRS_WITH_LATENCY)
        write_pairs(fast_source, PAIRS_NO_LATENCY)
        with StubServer(slow(keyword("GOOD"), 0.1)) as stub:
            for concurrency in (1, 8, 32):
                cache = os.path.join(work, f"cache-{concurrency}")
                results[f"latency100ms_concurrency{concurrency}_s"] = timed_judge(stub.url, slow_source, cache, concurrency)
            sent = sum(stub.received.values())
            results["cached_rerun_s"] = timed_judge(stub.url, slow_source, os.path.join(work, "cache-8"), 8)
            results["cached_rerun_requests"] = sum(stub.received.values()) - sent
        with StubServer(keyword("GOOD")) as stub:
            results["no_latency_1000_requests_concurrency8_s"] = timed_judge(stub.url, fast_source,
                                                                             os.path.join(work, "cache-fast"), 8)
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    os.makedirs(os.path.join(ROOT, "bench", "out", "judge"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "judge", "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
