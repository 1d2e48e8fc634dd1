"""``pfx score``: add reward-model scores, log-probs or implicit rewards to records."""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Any, Iterable, Iterator

import click

from pfx.io import drop_torn_tail, read_records
from pfx.model.cli import OTHER_SHARD, Shard, shard_option, take_shard
from pfx.model.config import ModelOptions
from pfx.options import io_options, model_options
from pfx.runner import IOOptions, Run
from pfx.score_metrics import PairMetrics, parse_alpha, summary_lines

# Records per chunk, as a multiple of --batch-size: a chunk is sorted by length before batching.
CHUNK_BATCHES = 8


@click.command(name="score")
@io_options
@model_options
@shard_option
@click.option("--reward-model", metavar="PATH_OR_HUB_ID",
              help="Sequence-classification reward model: adds score_chosen/score_rejected, scores or score.")
@click.option("--logps", is_flag=True,
              help="Add the log-probs of each answer under --model: logps_chosen/logps_rejected, "
                   "each {sum, mean, tokens}.")
@click.option("--implicit", is_flag=True,
              help="Add implicit DPO rewards beta*(log pi - log pi_ref) of --model against --ref "
                   "(implicit_reward_chosen/_rejected, with logps_* and ref_logps_*).")
@click.option("--ref", metavar="PATH_OR_HUB_ID", help="Reference model of --implicit.")
@click.option("--beta", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="DPO beta of --implicit and of the idealized ranking accuracy.")
@click.option("--alpha", metavar="FIELD|VALUE",
              help="P(chosen is better) for the idealized ranking accuracy: a number in [0, 1] or a record "
                   "field such as confidence (default 0.75).")
@click.option("--show-tokens", type=click.IntRange(min=0), default=0, metavar="N",
              help="Print how the first N records tokenize to stderr: the first tokens, the prompt's last tokens "
                   "and each answer's first tokens, with their ids.")
@click.option("--resume", is_flag=True,
              help="Keep the records already in -o FILE, score only the others and append them.")
def command(io: IOOptions, model_options: ModelOptions, shard: Shard, reward_model: str | None, logps: bool,
            implicit: bool, ref: str | None, beta: float, alpha: str | None, show_tokens: int, resume: bool) -> None:
    """Add reward-model scores, answer log-probs or implicit rewards to records.

    Reads pair, list and unpaired records. --reward-model adds the reward of
    each answer; --logps adds its log-probs under --model (sum over answer
    tokens, per-token mean, token count); --implicit adds
    beta*(log pi(y|x) - log pi_ref(y|x)) of --model against --ref. The options
    combine. The summary (stderr, --summary FILE) reports reward accuracy
    with ties apart, the mean margin, the ranking accuracy of the model's own
    likelihoods (summed and per token), the idealized ranking accuracy of
    the DPO optimum for --alpha and --beta, and mean answer lengths.

    \b
    Example:
      python -m pfx.tiny lm && python -m pfx.tiny ref --seed 1 && python -m pfx.tiny rm --kind reward-model
      pfx score --reward-model rm fixtures/score/pairs.jsonl
      pfx score --logps --model lm -o scored.jsonl fixtures/score/pairs.jsonl
      pfx score --implicit --model lm --ref ref --beta 0.1 fixtures/score/pairs.jsonl
    """
    policy = model_options.model
    _check_usage(io, policy, reward_model, logps, implicit, ref, resume)
    try:
        alpha_setting = parse_alpha(alpha)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--alpha") from error

    import torch

    from pfx.scoring import boundary_lines, count_encoder_events, log_scorers, score_records

    torch.manual_seed(model_options.seed)
    scorers, paths = _load_scorers(model_options, reward_model, policy if (logps or implicit) else None,
                                   ref if implicit else None)
    if not io.quiet:
        log_scorers("score", scorers, paths)

    # Resuming: the records already in -o FILE are skipped on input and counted in the metrics.
    metrics = PairMetrics(beta=beta, alpha=alpha_setting)
    appending = resume and io.output is not None and os.path.exists(io.output)
    done, torn_bytes = _read_previous_output(io.output, metrics) if appending and io.output else (Counter(), 0)

    run = Run("score", io, append=appending)
    if torn_bytes:
        run.count("torn last line dropped")
    items = take_shard(run.items(), shard, on_skip=lambda: run.count(OTHER_SHARD))
    for _, record in score_records(_skip_done(items, done, run), scorers, beta,
                                   chunk_size=model_options.batch_size * CHUNK_BATCHES, on_reject=run.reject_error):
        run.write(record)
        metrics.add(record)
        if show_tokens > run.written - 1:
            for line in boundary_lines(scorers[0], record):
                print(f"pfx score: record {run.written}: {line}", file=sys.stderr)

    # Records of -o FILE that no input record matched: the file came from another input,
    # and the summary below mixes both. Say so instead of finishing quietly.
    unmatched = sum(done.values())
    if unmatched:
        run.count("output records not in the input", unmatched)
        print(f"pfx score: warning: {unmatched} records already in {io.output} match no input record; "
              "the file was probably written from another input, and the summary counts them too", file=sys.stderr)

    count_encoder_events(run, scorers)
    run.extra.update(metrics.summary())
    run.finish()
    if not io.quiet:
        for line in summary_lines(run.extra, scores_from_input=reward_model is None):
            print(f"pfx score: {line}", file=sys.stderr)


def _check_usage(io: IOOptions, policy: str | None, reward_model: str | None, logps: bool, implicit: bool,
                 ref: str | None, resume: bool) -> None:
    if not (reward_model or logps or implicit):
        raise click.UsageError("nothing to add: give --reward-model M, --logps --model M, "
                               "or --implicit --model POLICY --ref REF")
    if (logps or implicit) and not policy:
        raise click.UsageError(f"{'--implicit' if implicit else '--logps'} needs --model PATH_OR_HUB_ID")
    if policy and not (logps or implicit):
        raise click.UsageError("--model is the model of --logps or --implicit; a reward model goes in --reward-model")
    if implicit and not ref:
        raise click.UsageError("--implicit needs --ref PATH_OR_HUB_ID (the reference model)")
    if ref and not implicit:
        raise click.UsageError("--ref is the reference of --implicit; add --implicit")
    if resume:
        if io.output in (None, "-"):
            raise click.UsageError("--resume needs -o FILE: it reads the records that FILE already has")
        if io.output.endswith((".gz", ".zst")):
            raise click.UsageError("--resume needs an uncompressed -o FILE (.jsonl): a killed compressed "
                                   "stream cannot be extended")


def _load_scorers(options: ModelOptions, reward_model: str | None, policy: str | None,
                  ref: str | None) -> tuple[list[Any], list[str]]:
    """Load the reward model, the policy and the reference that were requested, in that order."""
    from pfx.scoring import load_scorer

    scorers, paths = [], []
    for kind, field_name, path, role in (("reward", "score", reward_model, "reward model"),
                                         ("logps", "logps", policy, "model"),
                                         ("logps", "ref_logps", ref, "ref")):
        if path:
            scorers.append(load_scorer(kind, field_name, path, options, role))
            paths.append(path)
    return scorers, paths


def _read_previous_output(path: str, metrics: PairMetrics) -> tuple[Counter, int]:
    """Drop a torn last line from ``path``, count its records by key and add them to ``metrics``."""
    from pfx.scoring import record_key

    torn_bytes = drop_torn_tail(path)
    done: Counter = Counter()
    for record in read_records(path):
        done[record_key(record)] += 1
        metrics.add(record)
    return done, torn_bytes


def _skip_done(items: Iterable[Any], done: Counter, run: Run) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Yield (item, record) for records not yet in the output; count the others."""
    from pfx.scoring import record_key

    for item in items:
        record = item.record
        if done:
            key = record_key(record)
            if done[key] > 0:
                done[key] -= 1
                run.count("already scored")
                continue
        yield item, record
