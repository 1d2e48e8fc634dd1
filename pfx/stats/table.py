"""Render the ``pfx stats`` report as rich tables for people. The JSON report is the stable interface."""

from __future__ import annotations

from typing import IO, Any

from rich.console import Console
from rich.table import Table


def _length_row(summary: dict[str, Any] | None) -> list[str]:
    if summary is None:
        return ["-"] * 5
    return [str(summary["count"]), f"{summary['mean']:.1f}", str(summary["p50"]), str(summary["p90"]), str(summary["max"])]


def _interval(values: list[float] | None) -> str:
    return "-" if values is None else f"{values[0]:.3f}-{values[1]:.3f}"


def _overview(report: dict[str, Any]) -> Table:
    table = Table(title="pfx stats", show_header=False)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    table.add_row("records", str(report["records"]))

    for kind, count in report["kinds"].items():
        if count:
            table.add_row(f"  {kind} records", str(count))
    table.add_row("prompts: distinct / duplicate records", f"{report['prompts']['distinct']} / {report['prompts']['duplicate_records']}")
    ties = report["ties"]
    table.add_row("ties: equal scores / identical answers", f"{ties['equal_scores']} / {ties['identical_answers']}")
    empty = {name: count for name, count in report["empty"].items() if count}
    table.add_row("empty texts", ", ".join(f"{name} {count}" for name, count in empty.items()) or "0")

    for key in ("length_bias", "token_length_bias"):
        bias = report[key]
        if bias is None or not bias["pairs"]:
            continue
        share = bias["chosen_longer_share"]
        table.add_row(
            f"chosen longer ({bias['unit']}, 95% CI)",
            "-" if share is None else f"{share:.3f} ({_interval(bias['ci95'])}) of {bias['chosen_longer'] + bias['rejected_longer']}",
        )

    margin = report["scores"]["margin"]
    if margin is not None:
        table.add_row("score margin: mean / min / max", f"{margin['mean']:.3f} / {margin['min']:g} / {margin['max']:g}")

    judge = report["judge"]
    if judge is not None:
        table.add_row("judged records", str(judge["records"]))
        share = judge["first_position_share"]
        table.add_row("first-position wins (95% CI)", "-" if share is None else f"{share:.3f} ({_interval(judge['first_position_ci95'])})")

    against = report["against"]
    if against is not None:
        table.add_row(f"prompts also in {against['file']}", f"{against['overlapping_records']} records, {against['overlapping_prompts']} prompts")
    return table


def _lengths(report: dict[str, Any], key: str) -> Table | None:
    lengths = report[key]
    if lengths is None:
        return None
    table = Table(title=f"lengths in {lengths['unit']}")
    for column in ("field", "count", "mean", "p50", "p90", "max"):
        table.add_column(column, justify="left" if column == "field" else "right")
    for name, summary in lengths.items():
        if isinstance(summary, dict):
            table.add_row(name, *_length_row(summary))
    return table


def _compare(compare: dict[str, Any] | None) -> Table | None:
    if compare is None:
        return None
    outcomes = compare["outcomes"]
    table = Table(title=f"agreement with {compare['file']}", min_width=72)
    table.add_column("")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for outcome, row in zip(outcomes, compare["table"]):
        table.add_row(outcome, *(str(count) for count in row))
    agreement, kappa = compare["agreement"], compare["kappa"]
    table.caption = (
        "rows: this input, columns: the other labeling, cells: the first answer's outcome; "
        f"joined {compare['pairs']['joined']} pairs; agreement {'-' if agreement is None else f'{agreement:.3f}'}; "
        f"Cohen's kappa {'-' if kappa is None else f'{kappa:.3f}'}"
    )
    return table


def print_tables(report: dict[str, Any], stream: IO[str]) -> None:
    """Print the report's tables to ``stream``."""
    console = Console(file=stream, width=120)
    for table in (_overview(report), _lengths(report, "lengths"), _lengths(report, "token_lengths"), _compare(report["compare"])):
        if table is not None:
            console.print(table)
