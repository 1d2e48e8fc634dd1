"""``pfx judge``: LLM-as-a-judge on pairs and lists, in both answer orders."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import click

from pfx.backends import (BackendOptions, Completer, backend_options, check_backend_options, open_completer,
                          records_per_window, stderr_logger)
from pfx.errors import RecordError
from pfx.judging.aggregate import Judgment
from pfx.judging.run import (ORDER_MODES, Comparison, JudgeSettings, answer_models, comparison_field, judge_field,
                             label_outcome, list_to_judged_pairs, plan, plan_split, read_replies, relabel_pair,
                             wins_per_completion)
from pfx.judging.summary import JudgeStats
from pfx.judging.templates import Template, TemplateError, describe_templates, load_template
from pfx.judging.uncertain import UncertainPicker
from pfx.model.cli import OTHER_SHARD, Shard, batched, shard_option, take_shard
from pfx.model.config import ModelOptions
from pfx.options import io_options, model_options
from pfx.records import text_of, validate
from pfx.runner import IOOptions, Run
from pfx.transforms import TIE_POLICIES

# Share of judged records sent to people; "Large Language Models are not Fair
# Evaluators" (arXiv 2305.17926) routes the top 20% by entropy.
DEFAULT_UNCERTAIN_SHARE = 0.2


def _list_templates(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    for name, parser, description in describe_templates():
        click.echo(f"{name}\t{parser}\t{description}")
    ctx.exit(0)


@click.command(name="judge")
@io_options
# judge never cuts a prompt, because a cut could hide part of what is compared.
@model_options(max_length_help="Maximum tokens of the judge prompt plus --max-new-tokens (local backend); a record "
                               "whose judge prompt does not fit is rejected, never cut.",
               truncation_help="Not used by judge: a judge prompt that does not fit rejects its record.")
@backend_options
@shard_option
@click.option("--template", "template_name", default="pairwise-verdict", show_default=True, metavar="NAME|FILE",
              help="Built-in judge template (see --list-templates) or a template FILE.")
@click.option("--list-templates", is_flag=True, is_eager=True, expose_value=False, callback=_list_templates,
              help="List the built-in templates (name, reply format, description) and exit.")
@click.option("--orders", type=click.Choice(ORDER_MODES), default="both", show_default=True,
              help="both: ask every comparison in both answer orders. one: chosen (or the earlier completion) shown first. "
                   "random: one order per comparison, picked from --seed and the record.")
@click.option("--samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Replies sampled per order (multiple evidence calibration); the verdict uses all of them.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=None,
              help="Sampling temperature of the judge [default: 0 with --samples 1, else 1].")
@click.option("--top-p", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=1.0, show_default=True,
              help="Nucleus sampling probability mass of the judge.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Maximum tokens per judge reply.")
@click.option("--ties", type=click.Choice(TIE_POLICIES), default="keep", show_default=True,
              help="keep: write pairs the judge calls a tie (including order-inconsistent ones). drop: leave them out and count them.")
@click.option("--relabel", is_flag=True,
              help="Make the judge's winner the chosen answer; list records become one pair per decided comparison.")
@click.option("--uncertain-out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the judged records with the most uncertain verdicts (highest entropy) to FILE, for people to label.")
@click.option("--uncertain-share", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=None,
              help="Share of the judged records that --uncertain-out receives at most [default: 0.2].")
@click.option("--reference-field", default="reference", show_default=True, metavar="FIELD",
              help="Record field holding the reference answer for templates that use {reference}.")
@click.option("--split-merge", is_flag=True,
              help="Ask comparisons whose verdict flips with the order once more, with both answers cut into aligned "
                   "parts shown in turn (split-and-merge); a verdict that then agrees in both orders replaces the tie.")
@click.option("--split-parts", type=click.IntRange(min=2), default=3, show_default=True,
              help="Parts per answer for --split-merge (fewer when an answer has fewer sentences).")
@click.option("--split-template", default="pairwise-verdict-split", show_default=True, metavar="NAME|FILE",
              help="Template for --split-merge; it shows the parts through the {segments} placeholder.")
@click.option("--win-rate-of", metavar="MODEL",
              help="Also report the win rate of MODEL, read from meta.model_chosen/model_rejected, "
                   "meta.generator_chosen/generator_rejected or a list's meta.models.")
def command(io: IOOptions, model_options: ModelOptions, backend_options: BackendOptions, shard: Shard,
            template_name: str, orders: str, samples: int, temperature: float | None, top_p: float,
            max_new_tokens: int, ties: str, relabel: bool, uncertain_out: str | None, uncertain_share: float | None,
            reference_field: str, split_merge: bool, split_parts: int, split_template: str,
            win_rate_of: str | None) -> None:
    """Judge pairs with an LLM in both answer orders, with calibration and explicit ties.

    Reads pair records (and list records, judged pair by pair) and writes
    each with a "judge" field. It contains every reply ("verdicts": order AB or
    BA, winner A, B, tie or null, raw text) and the combined "winner"
    (chosen, rejected, tie, or null when no reply could be parsed). It also
    contains "consistent" (both orders agree; null when the orders cannot be
    compared) and the "entropy" of the outcomes. Orders that disagree make a
    tie. Unparseable replies are
    counted, never votes. The summary on stderr gives the win rate of the
    chosen answers, consistency, parse failures, agreement with the input
    labels, and the share of replies for the first position and for the
    longer answer.

    The judge is a local model (--model DIR) or an OpenAI-compatible server
    (--api-base URL --model NAME). Completed requests are cached on disk, so
    an interrupted run resumes where it stopped when started again.

    \b
    Example:
      python -m pfx.tiny tiny-llama
      pfx judge --model tiny-llama --max-new-tokens 16 fixtures/judge_pairs.jsonl > judged.jsonl
      pfx judge --api-base http://127.0.0.1:8000/v1 --model judge --samples 3 --relabel --ties drop pairs.jsonl > train.jsonl
      pfx judge --list-templates
    """
    try:
        template = load_template(template_name)
        split = SplitMerge(load_template(split_template), split_parts) if split_merge else None
    except TemplateError as exc:
        raise click.UsageError(str(exc)) from None
    if template.is_split:
        raise click.UsageError(f"--template {template_name} shows answers as {{segments}}; use it as --split-template")
    if split is not None and not split.template.is_split:
        raise click.UsageError(f"--split-template {split_template} has no {{segments}} placeholder for the answer parts")
    if split is not None and orders != "both":
        raise click.UsageError("--split-merge re-asks pairs whose two orders disagree, so it needs --orders both")
    check_backend_options(backend_options, model_options)
    if uncertain_share is not None and uncertain_out is None:
        raise click.UsageError("--uncertain-share sets how much --uncertain-out receives; add --uncertain-out FILE")
    if temperature is None:
        temperature = 0.0 if samples == 1 else 1.0

    assert model_options.model is not None
    settings = JudgeSettings(template=template, model=model_options.model, orders=orders, samples=samples,
                             temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=model_options.seed,
                             reference_field=reference_field)
    if samples > 1 and temperature == 0 and not io.quiet:
        print(f"pfx judge: warning: --samples {samples} with --temperature 0 requests the same reply several times",
              file=sys.stderr)
    completer = open_completer(backend_options, model_options, stderr_logger("judge", io.quiet))
    if not getattr(completer.backend, "has_chat_template", True):
        completer.close()
        raise click.UsageError(f"--model {model_options.model} has no chat template, and judge requests are "
                               "conversations; pass --chat-template FILE")

    run = Run("judge", io)
    picker = None
    if uncertain_out is not None:
        picker = UncertainPicker(DEFAULT_UNCERTAIN_SHARE if uncertain_share is None else uncertain_share)
    stats = JudgeStats(named_model=win_rate_of)
    orders_per_comparison = 2 if orders == "both" else 1
    window = records_per_window(backend_options, model_options, orders_per_comparison * samples)
    try:
        items = take_shard(run.items(), shard, on_skip=lambda: run.count(OTHER_SHARD))
        for chunk in batched(items, window):
            _judge_chunk(chunk, run, completer, settings, stats, picker, ties, relabel, split)
    finally:
        completer.close()

    if picker is not None and uncertain_out is not None:
        run.extra["uncertain_written"] = picker.write(uncertain_out)
    run.extra["judge"] = stats.as_dict()
    run.extra["backend"] = completer.summary()
    if not io.quiet:
        print(f"pfx judge: {stats.line()}", file=sys.stderr)
    run.finish()


@dataclass
class SplitMerge:
    """Settings of the split-and-merge follow-up (``--split-merge``)."""

    template: Template
    parts: int


def _judge_chunk(chunk: list[Any], run: Run, completer: Completer, settings: JudgeSettings, stats: JudgeStats,
                 picker: UncertainPicker | None, ties: str, relabel: bool, split: SplitMerge | None) -> None:
    """Judge one window of input records: plan all requests, complete them together, then write in input order."""
    planned = []
    for item in chunk:
        try:
            kind = validate(item.record, ("pair", "list"))
            planned.append((item, kind, plan(item.record, kind, settings)))
        except RecordError as error:
            run.reject_error(item, error)

    requests = [request for _, _, comparisons in planned for comparison in comparisons for request in comparison.requests]
    results = iter(completer.complete(requests))
    judged = []
    for item, kind, comparisons in planned:
        # Take this record's results first, so a rejected record leaves the others' results in step.
        record_results = [[next(results) for _ in comparison.requests] for comparison in comparisons]
        try:
            judgments = [read_replies(comparison, replies, settings.template)
                         for comparison, replies in zip(comparisons, record_results)]
        except RecordError as error:
            run.reject_error(item, error)
            continue
        judged.append((item, kind, comparisons, judgments))

    if split is not None:
        judged = _split_merge(judged, run, completer, settings, split)

    for item, kind, comparisons, judgments in judged:
        record = _judged_record(item.record, kind, comparisons, judgments, settings, stats)
        if picker is not None:
            picker.add(record)
        for output in _outputs(record, kind, relabel, ties, run):
            run.write(output)


def _split_merge(judged: list[tuple], run: Run, completer: Completer, settings: JudgeSettings,
                 split: SplitMerge) -> list[tuple]:
    """Re-ask each order-inconsistent comparison with split-and-merge and attach the follow-up judgments."""
    follow_ups = []
    rejected: set[int] = set()
    for position, (item, _, comparisons, judgments) in enumerate(judged):
        for comparison, judgment in zip(comparisons, judgments):
            if judgment.consistent is not False or position in rejected:
                continue
            try:
                follow_up = plan_split(item.record, comparison, settings, split.template, split.parts)
            except RecordError as error:
                rejected.add(position)
                run.reject_error(item, error)
                continue
            if follow_up is None:
                run.count("split-and-merge skipped (an answer has one sentence)")
                continue
            follow_ups.append((position, judgment, follow_up))

    results = iter(completer.complete([request for _, _, follow_up in follow_ups for request in follow_up.requests]))
    for position, judgment, follow_up in follow_ups:
        replies = [next(results) for _ in follow_up.requests]
        if position in rejected:
            continue
        try:
            judgment.add_split(read_replies(follow_up, replies, split.template))
        except RecordError as error:
            rejected.add(position)
            run.reject_error(judged[position][0], error)
    return [entry for position, entry in enumerate(judged) if position not in rejected]


def _judged_record(record: dict[str, Any], kind: str, comparisons: list[Comparison], judgments: list[Judgment],
                   settings: JudgeSettings, stats: JudgeStats) -> dict[str, Any]:
    """Return the record with its ``judge`` field, and count its comparisons in ``stats``."""
    for comparison, judgment in zip(comparisons, judgments):
        stats.add(judgment, len(text_of(comparison.first)), len(text_of(comparison.second)),
                  label_outcome(record, kind, comparison.positions), answer_models(record, kind, comparison.positions))
    if kind == "pair":
        return {**record, "judge": judge_field(judgments[0], settings)}
    entries = [comparison_field(judgment, comparison.positions) for comparison, judgment in zip(comparisons, judgments)]
    judge = {"model": settings.model, "template": settings.template.name, "comparisons": entries,
             "wins": wins_per_completion(len(record["completions"]), entries)}
    return {**record, "judge": judge}


def _outputs(judged: dict[str, Any], kind: str, relabel: bool, ties: str, run: Run) -> list[dict[str, Any]]:
    """Apply --relabel and --ties to one judged record; count what they change."""
    if kind == "list":
        if not relabel:
            return [judged]
        pairs = list_to_judged_pairs(judged, judged["judge"]["comparisons"], keep_ties=ties == "keep")
        run.count("lists expanded to pairs")
        run.count("pairs from lists", len(pairs))
        return pairs
    winner = judged["judge"]["winner"]
    if winner is None:
        run.count("pairs without verdict")
    if winner == "tie" and ties == "drop":
        run.count("ties dropped")
        return []
    if relabel:
        judged = relabel_pair(judged)
        if judged["judge"]["swapped"]:
            run.count("pairs swapped")
    return [judged]
