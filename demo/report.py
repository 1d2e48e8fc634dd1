"""Print the report of the demo pipeline from the files its steps wrote.

Usage: python demo/report.py DIR STEP... [--metrics FILE] [--start STEP --trained STEP]

Each STEP is the name of a pipeline step that ran with
``--summary DIR/STEP.summary.json`` and, under ``--on-error skip``,
``--rejects DIR/STEP.rejects.jsonl``. The report lists the records each step
read, wrote and rejected, why it rejected them, the training metrics, and
the held-out accuracies of the trained policy (``--trained``, scored with
``pfx score --implicit`` against the starting model) and of the starting
model (``--start``, scored with ``pfx score --logps``).

Only the standard library is used, so the report prints in well under a
second and needs no model packages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

# Summary keys that every command writes; any other key is a step-specific detail.
COMMON_KEYS = {"command", "read", "written", "rejected", "rejected_by_reason", "counts", "seconds"}
MAX_REJECTS_SHOWN = 3


def load_json(path: str) -> dict[str, Any] | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_jsonl(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{name}: {value}" for name, value in counts.items())


def records_section(directory: str, steps: list[str]) -> list[str]:
    lines = ["Records per step (from each step's --summary FILE)",
             f"  {'step':<16}{'read':>6}{'written':>9}{'rejected':>10}  other counts"]
    for step in steps:
        summary = load_json(os.path.join(directory, f"{step}.summary.json"))
        if summary is None:
            lines.append(f"  {step:<16}{'(no summary: the step has not run)':>25}")
            continue
        written = summary.get("written", 0)
        if summary.get("command") == "train-dpo":
            written = summary.get("counts", {}).get("trained", written)
        lines.append(f"  {step:<16}{summary.get('read', 0):>6}{written:>9}{summary.get('rejected', 0):>10}  "
                     f"{format_counts(summary.get('counts', {}))}")
    return lines


def rejects_section(directory: str, steps: list[str]) -> list[str]:
    lines = ["Rejected records and why"]
    for step in steps:
        summary = load_json(os.path.join(directory, f"{step}.summary.json")) or {}
        reasons = summary.get("rejected_by_reason") or {}
        if not reasons:
            continue
        lines.append(f"  {step}: {format_counts(reasons)}")
        rejects = load_jsonl(os.path.join(directory, f"{step}.rejects.jsonl"))
        for entry in rejects[:MAX_REJECTS_SHOWN]:
            lines.append(f"    {entry.get('source')}:{entry.get('line')}: {entry.get('reason')}")
        if len(rejects) > MAX_REJECTS_SHOWN:
            lines.append(f"    ... {len(rejects) - MAX_REJECTS_SHOWN} more in {step}.rejects.jsonl")
    if len(lines) == 1:
        lines.append("  none")
    return lines


def training_section(metrics_path: str) -> list[str]:
    metrics = [record for record in load_jsonl(metrics_path) if "step" in record]
    if not metrics:
        return ["Training", f"  no metrics in {metrics_path}"]
    first, last = metrics[0], metrics[-1]

    def value(record: dict[str, Any], key: str) -> str:
        number = record.get(key)
        return "n/a" if number is None else f"{number:.3f}"

    return [
        f"Training ({len(metrics)} metrics lines, last step {last['step']}, epoch {last.get('epoch', 'n/a')})",
        f"  {'metric':<22}{'first step':>12}{'last step':>12}",
        *(f"  {key:<22}{value(first, key):>12}{value(last, key):>12}"
          for key in ("loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected")),
    ]


def heldout_section(directory: str, start_step: str, trained_step: str) -> list[str]:
    start = load_json(os.path.join(directory, f"{start_step}.summary.json")) or {}
    trained = load_json(os.path.join(directory, f"{trained_step}.summary.json")) or {}
    pairs = trained.get("pairs_scored", start.get("pairs_scored", 0))

    def ranking(summary: dict[str, Any], statistic: str) -> str:
        return percent(((summary.get("ranking_accuracy") or {}).get(statistic) or {}).get("accuracy"))

    implicit = trained.get("implicit_reward_accuracy") or {}
    return [
        f"Held-out pairs ({pairs})",
        f"  {'':<44}{'starting':>10}{'trained':>10}",
        f"  {'reward accuracy (implicit, trained vs start)':<44}{'-':>10}{percent(implicit.get('accuracy')):>10}",
        f"  {'mean implicit reward margin':<44}{'-':>10}{implicit.get('mean_margin', float('nan')):>10.3f}",
        f"  {'ranking accuracy, summed log-probs':<44}{ranking(start, 'sum'):>10}{ranking(trained, 'sum'):>10}",
        f"  {'ranking accuracy, per-token mean log-probs':<44}{ranking(start, 'mean'):>10}{ranking(trained, 'mean'):>10}",
        "  Reward accuracy: share of pairs where beta*(log pi - log pi_start) is higher for the chosen answer.",
        "  Ranking accuracy: share of pairs where the model itself gives the chosen answer the higher log-prob.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the demo pipeline's report.")
    parser.add_argument("directory", help="directory of the step outputs, e.g. build/demo")
    parser.add_argument("steps", nargs="+", help="step names in pipeline order")
    parser.add_argument("--metrics", help="train-dpo metrics JSONL")
    parser.add_argument("--start", help="step that scored the held-out pairs with the starting model")
    parser.add_argument("--trained", help="step that scored the held-out pairs with the trained policy")
    args = parser.parse_args(argv)

    sections = [records_section(args.directory, args.steps), rejects_section(args.directory, args.steps)]
    if args.metrics:
        sections.append(training_section(args.metrics))
    if args.start and args.trained:
        sections.append(heldout_section(args.directory, args.start, args.trained))
    print("\n\n".join("\n".join(section) for section in sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
