"""``pfx convert``: read a feedback format, write pfx records or another trainer's format."""

from __future__ import annotations

import sys
from itertools import chain, islice
from typing import Any, Iterator

import click

from pfx.errors import DataError, RecordError
from pfx.formats import (LABEL_CHOICES, READERS, SCORE_CHOICES, WRITERS, Reader, ReadOptions, available_readers,
                         load_reader, load_writer)
from pfx.formats.pipeline import (DETECT_SAMPLE, STYLES, ConvertOptions, Converter, DetectionError, Tracked, detect_format,
                                  sample_name, tracked)
from pfx.options import io_options, pairs_options
from pfx.runner import IOOptions, Run
from pfx.transforms import PairOptions

# Counts that get a one-time warning with the FILE:LINE of their first record.
WARNED_COUNTS = ("empty prompt", "empty chosen", "empty rejected", "empty completion", "identical answers")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--from", "source", type=click.Choice(["auto", *READERS]), default="auto", show_default=True,
              help="Input format; auto detects it from the first records and names it on stderr.")
@click.option("--to", "target", type=click.Choice(list(WRITERS)), default="pfx", show_default=True,
              help="Output format.")
@click.option("--style", type=click.Choice(STYLES), default="keep", show_default=True,
              help="Answer style: keep the source's, standard (strings) or conversational (messages).")
@click.option("--chat-template", type=click.Path(exists=True, dir_okay=False),
              help="Jinja chat template FILE that renders conversations as strings under --style standard "
                   "(needed for system messages and several turns).")
@click.option("--unpair", is_flag=True, help="Split each pair into two unpaired records (chosen: label true, "
                                             "rejected: false).")
@pairs_options
@click.option("--score", type=click.Choice(SCORE_CHOICES), default="overall", show_default=True,
              help="UltraFeedback: which rating becomes the score (fine-grained: the mean of the four aspects).")
@click.option("--label", type=click.Choice(LABEL_CHOICES), default="better", show_default=True,
              help="PKU-SafeRLHF: which judgment picks the chosen answer.")
@io_options
def command(source: str, target: str, style: str, chat_template: str | None, unpair: bool, pair_options: PairOptions,
            score: str, label: str, io: IOOptions) -> None:
    """Convert preference data between public formats and pfx records.

    Reads each input record into a pfx pair, unpaired, list or prompt record
    (provenance under meta) and writes it in the --to format. A record the
    target cannot store (a multi-turn answer for a single-turn format) is
    rejected with a reason, so no turn is dropped silently.

    List records (scores or ranks) become pairs per --pairs when the target
    cannot hold lists, or with --pairs given. Ties (identical answers, equal
    scores) follow --ties. Empty prompts and answers are kept and counted.
    The summary on stderr accounts for every input record: written,
    rejected, dropped by a policy, merged or expanded.

    \b
    Example:
      pfx convert fixtures/hh_rlhf.jsonl
      pfx convert --from llama-factory --to trl fixtures/llama_factory.jsonl
      pfx convert --to unpaired --style conversational fixtures/trl.jsonl
      pfx convert --to prompts fixtures/trl.jsonl
      pfx convert --to openai-preference --style conversational fixtures/axolotl.jsonl
      pfx convert --on-error skip --rejects /dev/null --to axolotl fixtures/llama_factory.jsonl
    """
    context = click.get_current_context()
    check_usage(source, target, style, chat_template, unpair)
    render = None
    if chat_template:
        render = _load_template(chat_template)
    explicit_pairs = context.get_parameter_source("strategy") is not click.core.ParameterSource.DEFAULT
    options = ConvertOptions(pairs=pair_options, expand_lists=explicit_pairs, unpair=unpair or target == "unpaired",
                             style=style, render=render)
    read_options = ReadOptions(score=score, label=label, extra={"style": style})
    converter = Converter(load_writer(target), options)

    run = Run("convert", io)
    try:
        convert_stream(run, source, converter, read_options)
    finally:
        run.close()
    run.finish()


def check_usage(source: str, target: str, style: str, chat_template: str | None, unpair: bool) -> None:
    """Reject flag combinations that no input could satisfy, before reading anything."""
    if source != "auto" and source not in available_readers():
        raise click.UsageError(f"--from {source}: this reader is not installed in this version of pfx "
                               f"(available: {', '.join(available_readers())})")
    if chat_template and style != "standard":
        raise click.UsageError("--chat-template renders conversations as strings, so it needs --style standard")
    writer = load_writer(target)
    if unpair and "unpaired" not in writer.kinds:
        unpaired_targets = [name for name in WRITERS if "unpaired" in load_writer(name).kinds]
        raise click.UsageError(f"--unpair writes unpaired records, which --to {target} cannot hold "
                               f"(it accepts {', '.join(writer.kinds)}); --to formats that hold them: {', '.join(unpaired_targets)}")
    if target == "openai-preference" and style == "standard":
        raise click.UsageError("--to openai-preference accepts conversations only; use --style conversational or keep")


def _load_template(path: str) -> Any:
    from pfx.formats.messages import load_chat_template

    try:
        return load_chat_template(path)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--chat-template") from None


def convert_stream(run: Run, source: str, converter: Converter, read_options: ReadOptions) -> None:
    """Read every input file through its reader and the converter, and keep the books in ``run``.

    With ``--from auto`` each file's format is detected from its own first
    records, so one run can read files of different formats.
    """
    formats: list[str] = []
    warned: set[str] = set()
    files = run.options.files or ("-",)
    if "-" in files and sys.stdin.isatty() and not run.options.quiet:
        print("pfx convert: reading records from the terminal (end with Ctrl-D)", file=sys.stderr)
    for path in files:
        items = run.items([path])
        name = source
        if source == "auto":
            head = list(islice(items, DETECT_SAMPLE))
            if not head:
                continue
            name = _detect(run, head)
            items = chain(head, items)
        if name not in formats:
            formats.append(name)
        _convert_file(run, load_reader(name), items, converter, read_options, warned)

    run.extra["from"] = ",".join(formats)
    run.extra["to"] = converter.writer.name
    for name, count in chain(read_options.counts.items(), converter.counts.items()):
        if count:
            run.count(name, count)


def _detect(run: Run, head: list[Any]) -> str:
    readers = {name: load_reader(name) for name in available_readers()}
    try:
        name = detect_format([item.record for item in head], readers)
    except DetectionError as error:
        raise DataError(str(error), source=head[0].source) from None
    if not run.options.quiet:
        print(f"pfx convert: {head[0].source}: input format {name} (detected from {sample_name(len(head))})",
              file=sys.stderr)
    return name


def _convert_file(run: Run, reader: Reader, items: Iterator[Any], converter: Converter, read_options: ReadOptions,
                  warned: set[str]) -> None:
    state = Tracked()
    reader_rejects = 0
    reader_outputs = 0
    reader_drops_before = _reader_drops(read_options)
    reader_added_before = _reader_counts(read_options, "added:")

    def reject(item: Any, error: RecordError) -> None:
        nonlocal reader_rejects
        reader_rejects += 1
        run.reject_error(item, error)

    for record in reader.convert(tracked(items, state), read_options, reject):
        reader_outputs += 1
        try:
            targets = converter.convert(record)
        except RecordError as error:
            run.reject_error(state.item, error)
            continue
        for target_record in targets:
            run.write(target_record)
        _warn_first(run, converter, state, warned)

    # A reader that folds rows into one record (or splits one) shows it here, in total.
    reader_drops = _reader_drops(read_options) - reader_drops_before
    # Rows a reader restored (a header-less CSV's first row, read as column names) are input too.
    reader_added = _reader_counts(read_options, "added:") - reader_added_before
    surplus = reader_outputs + reader_drops - (state.delivered + reader_added - reader_rejects)
    if surplus < 0:
        converter.counts["merged"] += -surplus
    elif surplus > 0:
        converter.counts["expanded"] += surplus


def _reader_drops(read_options: ReadOptions) -> int:
    return _reader_counts(read_options, "dropped:")


def _reader_counts(read_options: ReadOptions, prefix: str) -> int:
    return sum(count for name, count in read_options.counts.items() if name.startswith(prefix))


def _warn_first(run: Run, converter: Converter, state: Tracked, warned: set[str]) -> None:
    if run.options.quiet or len(warned) == len(WARNED_COUNTS):
        return
    for name in WARNED_COUNTS:
        if name not in warned and converter.counts[name]:
            warned.add(name)
            item = state.item
            if name == "identical answers":
                action = "a tie, so dropped" if converter.options.pairs.ties == "drop" else "a tie, kept"
            else:
                action = "kept"
            print(f"pfx convert: warning: {item.source}:{item.line}: {name} ({action}; all such records are counted "
                  "in the summary)", file=sys.stderr)
