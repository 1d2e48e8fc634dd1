"""``pfx relabel-reward``: turn scored pairs into goal-conditioned pairs (reward-augmented data)."""

from __future__ import annotations

import random
from typing import Any, Iterator

import click

from pfx.errors import RecordError
from pfx.options import io_options, pairs_options
from pfx.relabel import (
    ORDERS,
    PLACEMENTS,
    RelabelOptions,
    Scale,
    check_template,
    format_score,
    grouped,
    inference_record,
    interleave,
    load_template,
    relabel_record,
)
from pfx.runner import IOOptions, Run
from pfx.transforms import PairOptions


def _scale_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Scale | None:
    if value is None:
        return None
    try:
        return Scale.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _attributes_option(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    names = tuple(name.strip() for name in value.split(","))
    if any(not name for name in names) or len(set(names)) != len(names):
        raise click.BadParameter(f"{value!r}: expected distinct comma-separated names such as helpfulness,honesty")
    return names


@click.command(name="relabel-reward")
@io_options
@pairs_options
@click.option("--template", "template_path", type=click.Path(exists=True, dir_okay=False),
              help="Goal template FILE with {low}, {high} and {goals} (or {score}); default: the authors' wording.")
@click.option("--placement", type=click.Choice(PLACEMENTS), default="system", show_default=True,
              help="system: the goal is a system message. user: the goal is prepended to the first user turn.")
@click.option("--scale", callback=_scale_option, metavar="LOW:HIGH",
              help="Scale of the input scores, e.g. 1:10 (overrides meta.score_scale).")
@click.option("--rescale", callback=_scale_option, metavar="LOW:HIGH",
              help="Map scores linearly onto this scale and state it in the template, e.g. 1:10 for 1-5 data.")
@click.option("--attributes", callback=_attributes_option, metavar="A,B,...",
              help="Condition on several attributes, one goal line each, read from attribute_scores_chosen "
                   "and attribute_scores_rejected.")
@click.option("--order", type=click.Choice(ORDERS), default="interleave", show_default=True,
              help="interleave: the two records of a pair next to each other, in --seed random order. "
                   "grouped: all kept-label records, then all swapped ones (the authors' order; shuffle before training).")
@click.option("--inference", is_flag=True,
              help="Rewrite each record's prompt with the goal text at --goal, for generation and evaluation.")
@click.option("--goal", type=float, help="Goal score for --inference, on the template's scale [default: its top].")
def command(io: IOOptions, pair_options: PairOptions, template_path: str | None, placement: str,
            scale: Scale | None, rescale: Scale | None, attributes: tuple[str, ...], order: str, inference: bool,
            goal: float | None) -> None:
    """Turn scored pairs into goal-conditioned pairs (reward-augmented data).

    Each pair with score_chosen and score_rejected becomes two pairs. The
    first states the chosen score as the goal and keeps the labels; the
    second states the rejected score and swaps chosen and rejected. The
    method is from Zhang et al., "Reward-Augmented Data Enhances Direct
    Preference Alignment of LLMs" (ICML 2025). List records with scores
    become pairs first (--pairs). Equal scores would give two contradictory records:
    --ties drop leaves them out and counts them, --ties keep reproduces the
    paper. The template states the score scale, so the scale must be known:
    --scale or meta.score_scale, and --rescale to state another one.

    \b
    Example:
      pfx relabel-reward fixtures/relabel_reward.jsonl
      pfx relabel-reward --ties keep --order grouped fixtures/relabel_reward.jsonl
      pfx relabel-reward --scale 1:5 --rescale 1:10 --placement user fixtures/relabel_reward_likert.jsonl
      pfx relabel-reward --scale 1:5 --attributes helpfulness,honesty fixtures/relabel_reward_likert.jsonl
      pfx relabel-reward --inference --goal 10 fixtures/relabel_reward.jsonl
    """
    if goal is not None and not inference:
        raise click.UsageError("--goal sets the goal of --inference; add --inference or leave out --goal")
    if inference and order != "interleave":
        raise click.UsageError("--order applies to relabeled pairs, not to --inference output")
    if goal is not None and rescale is not None and not rescale.contains(goal):
        raise click.UsageError(f"--goal {format_score(goal)} is outside the --rescale scale {rescale}")
    if goal is not None and rescale is None and scale is not None and not scale.contains(goal):
        raise click.UsageError(f"--goal {format_score(goal)} is outside the --scale scale {scale}")
    template = load_template(template_path)
    try:
        check_template(template, attributes)
    except ValueError as exc:
        raise click.UsageError(f"--template {template_path or 'default'}: {exc}") from None

    options = RelabelOptions(template=template, placement=placement, scale=scale, rescale=rescale,
                             attributes=attributes, pairing=pair_options, goal=goal)
    run = Run("relabel-reward", io)
    try:
        if inference:
            _run_inference(run, options)
        else:
            records = _relabeled(run, options, random.Random(pair_options.seed))
            if order == "grouped":
                ordered = grouped(records)
            else:
                ordered = interleave(records, random.Random(f"order-{pair_options.seed}"))
            for record in ordered:
                run.write(record)
    finally:
        run.close()
    run.finish()


def _relabeled(run: Run, options: RelabelOptions, rng: random.Random) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (kept, swapped) record pairs for every input record, applying the error policy and counting."""
    for item in run.items():
        try:
            result = relabel_record(item.record, options, rng)
        except RecordError as error:
            run.reject_error(item, error)
            continue
        run.count("scored pairs", result.pairs)
        counts = {
            "lists expanded": result.expanded_lists,
            "lists without a pair above --min-margin": result.lists_without_pairs,
            "ties dropped": result.ties_dropped,
            "ties kept": result.ties_kept,
            "below --min-margin": result.below_margin,
            "rejected score above chosen": result.reversed_scores,
            "meta.score_scale overridden by --scale": int(result.scale_overridden),
            "goal merged into a system message": result.merged_system,
        }
        for name, n in counts.items():
            if n:
                run.count(name, n)
        yield from result.records


def _run_inference(run: Run, options: RelabelOptions) -> None:
    for item in run.items():
        try:
            record, merged = inference_record(item.record, options)
        except RecordError as error:
            run.reject_error(item, error)
            continue
        if merged:
            run.count("goal merged into a system message")
        run.write(record)
