"""``pfx stats``: describe a dataset before training."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Iterator

import click

from pfx.errors import DataError, RecordError, RuntimeFailure
from pfx.io import iter_input
from pfx.options import io_options
from pfx.records import validate
from pfx.runner import IOOptions, Run
from pfx.stats.agreement import JOINS, Agreement
from pfx.stats.dataset import DatasetStats, Overlap, TokenCounter


@click.command(name="stats")
@io_options
@click.option("--against", type=click.Path(exists=True, dir_okay=False, allow_dash=False), metavar="FILE",
              help="Count prompts of the input that also occur in FILE (train/test leakage).")
@click.option("--compare", type=click.Path(exists=True, dir_okay=False, allow_dash=False), metavar="OTHER",
              help="Compare the input's labels with OTHER's on the answer pairs both label: 3x3 table, agreement, Cohen's kappa.")
@click.option("--join", type=click.Choice(JOINS), default="content", show_default=True,
              help="How --compare matches pairs: content (prompt and both answers) or id (record id and both answers).")
@click.option("--tokenizer", metavar="PATH", help="Also count lengths in tokens of this Hugging Face tokenizer (loads transformers).")
@click.option("--table", is_flag=True, help="Print tables instead of the JSON object.")
def command(io: IOOptions, against: str | None, compare: str | None, join: str, tokenizer: str | None,
            table: bool) -> None:
    """Describe a dataset: counts, ties, lengths, length bias, duplicates, agreement.

    Prints one JSON object with stable keys. It counts records by kind, ties
    (equal scores, identical answers), empty texts and duplicate prompts. It
    gives the lengths of prompt and answers in characters (and in tokens with
    --tokenizer) and the length bias: the share of pairs whose chosen answer
    is longer, with a 95% Wilson interval. It also summarizes scores, margins
    and the position of judges' winners. --against
    adds the prompt overlap with another file; --compare adds the agreement
    with a second labeling of the same pairs. When stdout is a terminal the
    tables also go to stderr; --table puts them on stdout instead of the JSON.

    \b
    Example:
      pfx stats fixtures/relabel_reward.jsonl
      pfx stats --table --against fixtures/stats_rankings.jsonl fixtures/relabel_reward.jsonl
      pfx stats --compare fixtures/stats_rankings.jsonl fixtures/stats_ratings.jsonl
    """
    if join != "content" and compare is None:
        raise click.UsageError("--join sets how --compare matches pairs. Add --compare OTHER or leave out --join")
    count_tokens = _token_counter(tokenizer) if tokenizer else None

    overlap = None
    if against is not None:
        overlap = Overlap(against)
        for record in _side_records(against, "--against"):
            overlap.add_against(record)
    agreement = None
    if compare is not None:
        agreement = Agreement(join=join)
        for record in _side_records(compare, "--compare"):
            agreement.add_other(record)

    stats = DatasetStats(count_tokens=count_tokens, tokenizer_name=tokenizer, overlap=overlap)
    # With --table the report is text, and a Run with an output path would create a JSONL file there.
    run = Run("stats", dataclasses.replace(io, output=None) if table else io)
    try:
        for item in run.items():
            try:
                kind = validate(item.record)
                stats.add(item.record, kind)
            except RecordError as error:
                run.reject_error(item, error)
                continue
            if agreement is not None:
                agreement.add(item.record)
        report = stats.report()
        if agreement is not None:
            report["compare"] = agreement.report(compare)
        _emit(report, run, io, table)
    finally:
        run.close()
    run.finish()


def _emit(report: dict[str, Any], run: Run, io: IOOptions, table: bool) -> None:
    from pfx.stats.table import print_tables

    if table:
        if io.output in (None, "-"):
            print_tables(report, sys.stdout)
        else:
            with open(io.output, "w", encoding="utf-8") as handle:
                print_tables(report, handle)
        return
    run.write(report)
    if io.output in (None, "-") and sys.stdout.isatty() and not io.quiet:
        print_tables(report, sys.stderr)


def _side_records(path: str, option: str) -> Iterator[dict[str, Any]]:
    """Yield the validated records of a side input. Its first bad record stops the run."""
    for item in iter_input([path]):
        if item.record is None:
            raise DataError(f"{item.error} (in the {option} file)", source=item.source, line=item.line)
        try:
            validate(item.record)
        except RecordError as error:
            raise DataError(f"{error} (in the {option} file)", source=item.source, line=item.line) from None
        yield item.record


def _token_counter(name: str) -> TokenCounter:
    """Load a tokenizer and return a function that counts a text's tokens, special tokens left out."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise click.UsageError("--tokenizer needs transformers: pip install 'pfx[model]'") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(f"--tokenizer {name}: cannot load a tokenizer ({exc})") from None

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
