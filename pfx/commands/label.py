"""``pfx label``: turn candidate answers into preference pairs with a model's scores."""

from __future__ import annotations

import random
import sys
from collections import Counter

import click

from pfx.labeling import LABEL_METHODS, LabelSettings, label_record
from pfx.model.cli import OTHER_SHARD, Shard, shard_option, take_shard
from pfx.model.config import ModelOptions
from pfx.options import io_options, model_options
from pfx.runner import IOOptions, Run
from pfx.transforms import PAIR_STRATEGIES, TIE_POLICIES

# Records per chunk, as a multiple of --batch-size: a chunk is sorted by length before batching.
CHUNK_BATCHES = 8


@click.command(name="label")
@io_options
@model_options
@shard_option
@click.option("--method", type=click.Choice(list(LABEL_METHODS)), required=True,
              help="implicit: beta*(log pi - log pi_ref) of --model against --ref. "
                   "reward-model: the score of the reward model --model.")
@click.option("--ref", metavar="PATH_OR_HUB_ID", help="Reference model of --method implicit.")
@click.option("--beta", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="DPO beta of --method implicit.")
@click.option("--pairs", "strategy", type=click.Choice(PAIR_STRATEGIES), default="best-worst", show_default=True,
              help="Which candidates pair up: best-worst (one pair), best-random, all (every ordered pair) "
                   "or adjacent (each candidate against the next one down).")
@click.option("--ties", type=click.Choice(TIE_POLICIES), default="drop", show_default=True,
              help="drop: leave out pairs with equal scores and count them. keep: write them (confidence 0.5).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Leave out pairs whose confidence is below this probability, and count them.")
def command(io: IOOptions, model_options: ModelOptions, shard: Shard, method: str, ref: str | None, beta: float,
            strategy: str, ties: str, min_confidence: float) -> None:
    """Label candidate answers as preference pairs with a policy or a reward model.

    Reads list records (a prompt and two or more completions) or pairs to
    relabel. Each candidate gets a score: with --method implicit the implicit
    reward beta*(log pi(y|x) - log pi_ref(y|x)) of --model against --ref (the
    model labels its own samples); with --method reward-model the reward of
    the reward model --model. The best candidate becomes chosen, the worst
    rejected (--pairs), with score_chosen, score_rejected and confidence =
    sigmoid(score_chosen - score_rejected). meta.label records the method,
    the models and beta; scores the input had move to meta.source_scores.

    \b
    Example:
      python -m pfx.tiny lm && python -m pfx.tiny ref --seed 1 && python -m pfx.tiny rm --kind reward-model
      pfx label --method implicit --model lm --ref ref fixtures/score/candidates.jsonl
      pfx label --method reward-model --model rm --min-confidence 0.5 fixtures/score/candidates.jsonl
    """
    model = model_options.model
    if not model:
        raise click.UsageError(f"--method {method} needs --model PATH_OR_HUB_ID")
    if method == "implicit" and not ref:
        raise click.UsageError("--method implicit needs --ref PATH_OR_HUB_ID (the reference model)")
    if method != "implicit" and ref:
        raise click.UsageError("--ref is the reference of --method implicit; a reward model needs none")

    from pfx.scoring import count_encoder_events, load_scorer, log_scorers, score_records

    if method == "implicit":
        assert ref is not None
        scorers = [load_scorer("logps", "logps", model, model_options, "model"),
                   load_scorer("logps", "ref_logps", ref, model_options, "ref")]
        provenance = {"method": method, "model": model, "ref": ref, "beta": beta}
    else:
        scorers = [load_scorer("reward", "score", model, model_options, "reward model")]
        provenance = {"method": method, "model": model}
    if not io.quiet:
        log_scorers("label", scorers, [model, ref] if method == "implicit" else [model])
    settings = LabelSettings(method=method, strategy=strategy, ties=ties, min_confidence=min_confidence,
                             provenance=provenance, rng=random.Random(model_options.seed))

    run = Run("label", io)
    events: Counter = Counter()
    confidence_total = 0.0
    items = take_shard(run.items(), shard, on_skip=lambda: run.count(OTHER_SHARD))
    records = ((item, item.record) for item in items)
    scored = score_records(records, scorers, beta, chunk_size=model_options.batch_size * CHUNK_BATCHES,
                           on_reject=run.reject_error, kinds=("list", "pair"))
    for _, record in scored:
        kind = "list" if "completions" in record else "pair"
        for pair in label_record(record, kind, settings, events):
            run.write(pair)
            confidence_total += pair["confidence"]

    for name, count in events.items():
        run.count(name, count)
    count_encoder_events(run, scorers)
    run.extra["label"] = {**provenance, "pairs": strategy, "mean_confidence":
                          confidence_total / run.written if run.written else None}
    run.finish()
    if not io.quiet and run.written:
        print(f"pfx label: mean confidence {confidence_total / run.written:.3f}", file=sys.stderr)
