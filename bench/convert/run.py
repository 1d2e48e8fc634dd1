"""Benchmark ``pfx convert --from hh-rlhf`` against jq and a datasets + TRL script.

Usage: python bench/convert/run.py [--copies-small N] [--copies-large N]

Builds inputs by repeating the HH-RLHF harmless-base test split, runs each
tool once per input under ``/usr/bin/time`` (wall time and peak RSS), and
writes ``bench/out/convert/results.json`` and ``results.md``. Records per
second are input records over wall time, start-up included.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT = ROOT / "bench" / "out" / "convert"
SOURCE = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
PFX = ROOT / ".venv" / "bin" / "pfx"
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


def build_input(copies: int) -> tuple[Path, int]:
    """Write the source split ``copies`` times into one JSONL file; return its path and record count."""
    lines = gzip.decompress(SOURCE.read_bytes()).splitlines(keepends=True)
    path = OUT / f"hh-rlhf-x{copies}.jsonl"
    if not path.exists():
        with open(path, "wb") as handle:
            for _ in range(copies):
                handle.writelines(lines)
    return path, len(lines) * copies


def timed(name: str, command: list[str], env: dict[str, str] | None = None, stdout: Path | None = None) \
        -> dict[str, float]:
    """Run ``command`` under /usr/bin/time; return wall and CPU (user + system) seconds and peak RSS in MiB.

    The command runs without a shell, so the figures are the tool's own. CPU
    seconds vary less than wall seconds when other work shares the machine.
    """
    report = OUT / f"time-{name}.txt"
    print(f"run {name}: {' '.join(command)}" + (f" > {stdout}" if stdout else ""), file=sys.stderr, flush=True)
    with open(stdout or os.devnull, "wb") as handle:
        subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(report), *command], check=True,
                       env={**os.environ, **(env or {})}, stdout=handle)
    seconds, user, system, kilobytes = report.read_text().split()[-4:]
    return {"seconds": float(seconds), "cpu_seconds": round(float(user) + float(system), 2),
            "peak_rss_mib": round(int(kilobytes) / 1024, 1)}


def same_split(first: Path, second: Path) -> int:
    """Return the number of records, after checking both files hold the same prompt/chosen/rejected."""
    with open(first, "rb") as a, open(second, "rb") as b:
        left = [json.loads(line) for line in a]
        right = [json.loads(line) for line in b]
    assert len(left) == len(right), (len(left), len(right))
    for index, (x, y) in enumerate(zip(left, right)):
        key = ("prompt", "chosen", "rejected")
        assert [x[k] for k in key] == [y[k] for k in key], f"record {index + 1} differs"
    return len(left)


def datasets_run(name: str, source: Path, num_proc: int | None) -> dict[str, float]:
    cache = OUT / "hf-cache"
    shutil.rmtree(cache, ignore_errors=True)
    # A cold cache each time: with a warm one, datasets would skip the work being measured.
    env = {"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    command = [str(BENCH_PYTHON), str(HERE / "datasets_convert.py"), str(source), str(OUT / f"out-{name}.jsonl")]
    if num_proc:
        command.append(str(num_proc))
    return timed(name, command, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies-small", type=int, default=22)
    parser.add_argument("--copies-large", type=int, default=87)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    # The jq program must split exactly as pfx does, or the comparison means nothing.
    base, base_records = build_input(1)
    subprocess.run([str(PFX), "convert", "--quiet", "--from", "hh-rlhf", str(base), "-o", str(OUT / "check-pfx.jsonl")],
                   check=True)
    with open(OUT / "check-jq.jsonl", "wb") as handle:
        subprocess.run(["jq", "-c", "-f", str(HERE / "hh_split.jq"), str(base)], check=True, stdout=handle)
    checked = same_split(OUT / "check-pfx.jsonl", OUT / "check-jq.jsonl")
    print(f"jq and pfx split the {checked} source records identically", file=sys.stderr)

    small, small_records = build_input(args.copies_small)
    large, large_records = build_input(args.copies_large)
    runs = {}
    for label, source, records in (("pfx small", small, small_records), ("pfx large", large, large_records)):
        runs[label] = timed(label.replace(" ", "-"), [str(PFX), "convert", "--quiet", "--from", "hh-rlhf", str(source),
                                                       "-o", str(OUT / "out-pfx.jsonl")])
        runs[label]["records"] = records
    runs["jq large"] = timed("jq-large", ["jq", "-c", "-f", str(HERE / "hh_split.jq"), str(large)],
                             stdout=OUT / "out-jq.jsonl")
    runs["jq large"]["records"] = large_records
    for label, num_proc in (("datasets large", None), ("datasets large num_proc=2", 2)):
        runs[label] = datasets_run(label.replace(" ", "-").replace("=", ""), large, num_proc)
        runs[label]["records"] = large_records
    for result in runs.values():
        result["records_per_second"] = round(result["records"] / result["seconds"])
        result["records_per_cpu_second"] = round(result["records"] / result["cpu_seconds"])

    pfx = runs["pfx large"]
    lines = ["| run | records | wall s | CPU s | records/s (wall) | records/CPU s | peak RSS MiB | pfx speed-up (wall) "
             "| pfx speed-up (CPU) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, result in runs.items():
        wall_ratio = pfx["records_per_second"] / result["records_per_second"]
        cpu_ratio = pfx["records_per_cpu_second"] / result["records_per_cpu_second"]
        lines.append(f"| {label} | {result['records']:,} | {result['seconds']:.2f} | {result['cpu_seconds']:.2f} "
                     f"| {result['records_per_second']:,} | {result['records_per_cpu_second']:,} "
                     f"| {result['peak_rss_mib']} | {wall_ratio:.2f} | {cpu_ratio:.2f} |")
    load = os.getloadavg()[0]
    machine = (f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
               f"1-minute load average {load:.1f} at the end")
    table = "\n".join(lines)
    (OUT / "results.md").write_text(f"Machine: {machine}\n\n{table}\n")
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "runs": runs}, indent=2) + "\n")
    print(f"Machine: {machine}\n\n{table}")
    # The converted copies are only needed while timing; the inputs stay for the next run.
    for output in OUT.glob("out-*.jsonl"):
        output.unlink()
    shutil.rmtree(OUT / "hf-cache", ignore_errors=True)


if __name__ == "__main__":
    main()
