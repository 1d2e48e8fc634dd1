"""Print the report of the demo pipeline, or of an example recipe, from the files its steps wrote.

Usage:
  python demo/report.py DIR STEP... [--stats FILE] [--metrics FILE] [--agreement FILE] [--start STEP --trained STEP]
  python demo/report.py --check-overlap STATS_JSON

Each STEP is the name of a pipeline step that ran with
``--summary DIR/STEP.summary.json`` and, under ``--on-error skip``,
``--rejects DIR/STEP.rejects.jsonl``. The report lists the records each step
read, wrote and rejected, why it rejected them, and the training metrics.
``--stats`` adds the data checks of ``pfx stats`` objects.
``--agreement`` adds how well model labels agree with the human labels (the
output of ``pfx stats --compare``). ``--start`` and ``--trained`` add the
held-out accuracies of the starting model (scored with ``pfx score --logps``)
and of the trained policy (scored with ``pfx score --implicit`` against the
starting model). The example recipes under examples/ print their reports
with this script too.

``--check-overlap`` reads the output of ``pfx stats --against HELDOUT`` and
exits 1 when a training prompt also occurs in the held-out file, or when the
held-out file is empty.

Only the standard library is used, so the report prints in well under a
second and needs no model packages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

MAX_REJECTS_SHOWN = 3
LAST_STEPS = 5


def load_json(path: str) -> dict[str, Any] | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as exc:
            sys.exit(f"{path}: expected one JSON object ({exc})")


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


def data_section(paths: list[str]) -> list[str]:
    """Summarize ``pfx stats`` objects: empty texts, duplicate prompts, length bias, held-out overlap."""
    lines = ["Data (pfx stats)"]
    for path in paths:
        stats = load_json(path) or {}
        name = os.path.basename(path)
        empty = {field: n for field, n in (stats.get("empty") or {}).items() if n}
        duplicates = (stats.get("prompts") or {}).get("duplicate_records", 0)
        lines.append(f"  {name}: {stats.get('records', 0)} records, empty texts: {format_counts(empty) or 'none'}, "
                     f"records with a duplicate prompt: {duplicates}")
        bias = stats.get("length_bias") or {}
        if bias.get("pairs"):
            low, high = bias.get("ci95") or (None, None)
            interval = f" (95% CI {percent(low)}-{percent(high)})" if low is not None else ""
            lines.append(f"    chosen answer longer in {percent(bias.get('chosen_longer_share'))}{interval} "
                         f"of {bias['pairs']} pairs ({bias.get('unit', 'characters')})")
        against = stats.get("against")
        if against:
            lines.append(f"    prompts also in {against.get('file')}: {against.get('overlapping_prompts')}")
    return lines


def training_section(metrics_path: str) -> list[str]:
    metrics = [record for record in load_jsonl(metrics_path) if "step" in record]
    if not metrics:
        return ["Training", f"  no metrics in {metrics_path}"]
    # One step's metrics come from one small batch and jump around, so the end is a mean over the last steps.
    window = metrics[-LAST_STEPS:]

    def mean(records: list[dict[str, Any]], key: str) -> str:
        values = [record[key] for record in records if record.get(key) is not None]
        return "n/a" if not values else f"{sum(values) / len(values):.3f}"

    last = metrics[-1]
    return [
        f"Training ({len(metrics)} metrics lines, last step {last['step']}, epoch {last.get('epoch', 'n/a')})",
        f"  {'metric':<22}{'first step':>12}{'last step' if len(window) == 1 else f'last {len(window)} steps':>16}",
        *(f"  {key:<22}{mean(metrics[:1], key):>12}{mean(window, key):>16}"
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


def agreement_section(path: str) -> list[str]:
    """Summarize ``pfx stats --compare HUMAN LABELED``: agreement of the model labels with the human ones."""
    stats = load_json(path) or {}
    compare = stats.get("compare") or {}
    table = compare.get("table")
    if not table:
        return ["Model labels against the human labels", f"  no comparison in {path}"]
    joined = (compare.get("pairs") or {}).get("joined", 0)
    # A 3x3 table of outcomes (win, tie, lose) under each labeling; the diagonal is agreement.
    disagreements = sum(count for row, counts in enumerate(table) for column, count in enumerate(counts) if row != column)
    kappa = compare.get("kappa")
    return [
        f"Model labels against the human labels ({joined} pairs, {os.path.basename(path)})",
        f"  agreement {percent(compare.get('agreement'))}, disagreements {disagreements}, "
        f"Cohen's kappa {'n/a' if kappa is None else format(kappa, '.3f')}",
    ]


def judge_section(directory: str, steps: list[str]) -> list[str]:
    """Summarize the judge statistics that ``pfx judge --summary`` writes, one line per judge step."""
    lines = ["Judge behaviour"]
    for step in steps:
        judge = (load_json(os.path.join(directory, f"{step}.summary.json")) or {}).get("judge")
        if not judge:
            continue
        consistency = "n/a (one order)" if not judge.get("compared_both_orders") else percent(judge.get("consistency_rate"))
        lines.append(f"  {step}: chosen wins {percent(judge.get('win_rate'))} (ties count half), "
                     f"both orders agree {consistency}, first position picked {percent(judge.get('first_position_rate'))}, "
                     f"longer answer picked {percent(judge.get('longer_answer_rate'))}, "
                     f"unparseable replies {judge.get('parse_failures', 0)} of {judge.get('replies', 0)}")
    return lines if len(lines) > 1 else []


def check_overlap(stats_path: str) -> int:
    """Return 1, with a message on stderr, when ``pfx stats --against`` found shared prompts."""
    against = (load_json(stats_path) or {}).get("against") or {}
    shared = against.get("overlapping_prompts")
    if shared is None:
        print(f"{stats_path}: no 'against' section; run pfx stats with --against HELDOUT", file=sys.stderr)
        return 1
    if not against.get("records"):
        print(f"{stats_path}: the held-out file {against.get('file')} has no records, so nothing can be evaluated",
              file=sys.stderr)
        return 1
    if shared:
        print(f"{stats_path}: prompts in both the training data and {against.get('file')}: {shared}. Held-out "
              "accuracies would be measured on training data; remove them from one of the files.", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the demo pipeline's report.")
    parser.add_argument("directory", nargs="?", help="directory of the step outputs, e.g. build/demo")
    parser.add_argument("steps", nargs="*", help="step names in pipeline order")
    parser.add_argument("--stats", action="append", default=[],
                        help="output of pfx stats (repeat for several), for the data section")
    parser.add_argument("--metrics", help="train-dpo metrics JSONL")
    parser.add_argument("--agreement", action="append", default=[],
                        help="output of pfx stats --compare HUMAN LABELED (repeat for several)")
    parser.add_argument("--start", help="step that scored the held-out pairs with the starting model")
    parser.add_argument("--trained", help="step that scored the held-out pairs with the trained policy")
    parser.add_argument("--check-overlap", metavar="STATS_JSON", help="only check pfx stats --against output")
    args = parser.parse_args(argv)
    if args.check_overlap:
        return check_overlap(args.check_overlap)
    if not args.directory or not args.steps:
        parser.error("give the output directory and at least one step name")

    sections = [records_section(args.directory, args.steps), rejects_section(args.directory, args.steps)]
    if args.stats:
        sections.append(data_section(args.stats))
    judge = judge_section(args.directory, args.steps)
    if judge:
        sections.append(judge)
    sections.extend(agreement_section(path) for path in args.agreement)
    if args.metrics:
        sections.append(training_section(args.metrics))
    if args.start and args.trained:
        sections.append(heldout_section(args.directory, args.start, args.trained))
    print("\n\n".join("\n".join(section) for section in sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
