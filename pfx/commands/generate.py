"""``pfx generate``: sample completions for prompts from a local model or an OpenAI-compatible server."""

from __future__ import annotations

import sys
from typing import Any

import click

from pfx.backends import (BackendOptions, Completion, CompletionRequest, backend_options, check_backend_options,
                          open_completer, records_per_window, stderr_logger)
from pfx.errors import RecordError
from pfx.judging.run import LIST_MODELS_FIELD
from pfx.model.cli import OTHER_SHARD, Shard, batched, shard_option, take_shard
from pfx.model.config import ModelOptions
from pfx.options import io_options, model_options
from pfx.records import Text, check_text, is_conversation, record_kind
from pfx.runner import IOOptions, Run
from pfx.records import json_type_name

LOGPS_FIELD = "completion_logps"


@click.command(name="generate")
@io_options
@model_options
@backend_options
@shard_option
@click.option("-n", "--num-completions", "count", type=click.IntRange(min=1), default=2, show_default=True,
              help="Completions to add per prompt.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="Sampling temperature; 0 is greedy decoding.")
@click.option("--top-p", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=1.0, show_default=True,
              help="Nucleus sampling probability mass.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Maximum tokens per completion.")
@click.option("--logprobs", is_flag=True,
              help=f"Also write {LOGPS_FIELD}: the summed log-prob of each new completion (null where unknown).")
def command(io: IOOptions, model_options: ModelOptions, backend_options: BackendOptions, shard: Shard, count: int,
            temperature: float, top_p: float, max_new_tokens: int, logprobs: bool) -> None:
    """Sample completions for prompts from a local model or a server.

    Reads prompt records (or list records) and writes list records: the
    prompt's existing "completions" are kept and -n new ones are added, so
    the output feeds pfx label, pfx judge or pfx score. A conversation prompt
    gets assistant-message completions; a plain-string prompt gets strings
    (sent to a chat server as one user message). Existing "scores" or
    "ranks" get null for the new completions, and "meta.models" names the
    model of each completion (null where unknown). Samples are numbered after the
    existing completions and seeded from --seed, and completed requests are
    cached on disk, so a rerun or a resumed run repeats no request.

    \b
    Example:
      python -m pfx.tiny tiny-llama
      pfx generate --model tiny-llama -n 2 --max-new-tokens 8 fixtures/generate_prompts.jsonl > lists.jsonl
      pfx generate --api-base http://127.0.0.1:8000/v1 --model policy -n 4 --temperature 0.8 prompts.jsonl > lists.jsonl
    """
    check_backend_options(backend_options, model_options)
    if count > 1 and temperature == 0 and not io.quiet:
        print(f"pfx generate: warning: -n {count} with --temperature 0 (greedy) gives the same completion {count} times",
              file=sys.stderr)
    run = Run("generate", io)
    completer = open_completer(backend_options, model_options, stderr_logger("generate", io.quiet))
    window = records_per_window(backend_options, model_options, count)
    try:
        items = take_shard(run.items(), shard, on_skip=lambda: run.count(OTHER_SHARD))
        for chunk in batched(items, window):
            planned = []
            for item in chunk:
                try:
                    check_input(item.record)
                except RecordError as error:
                    run.reject_error(item, error)
                    continue
                existing = len(item.record.get("completions") or [])
                requests = [
                    CompletionRequest(prompt=item.record["prompt"], max_tokens=max_new_tokens, temperature=temperature,
                                      top_p=top_p, seed=model_options.seed, sample=existing + sample,
                                      top_logprobs=1 if logprobs else 0)
                    for sample in range(count)
                ]
                planned.append((item, requests))
            results = completer.complete([request for _, requests in planned for request in requests])
            for position, (item, _) in enumerate(planned):
                new = results[position * count : (position + 1) * count]
                rejected = [result for result in new if not isinstance(result, Completion)]
                if rejected:
                    run.reject(item, rejected[0].reason, reason="request rejected", field=rejected[0].field)
                    continue
                run.write(add_completions(item.record, new, logprobs, completer.backend.model_id, run))  # type: ignore[arg-type]
    finally:
        completer.close()
    run.extra["backend"] = completer.summary()
    # The local backend cuts a prompt too long for --max-length; other commands report that on stderr too.
    truncated = getattr(completer.backend, "counts", {}).get("prompt truncated", 0)
    if truncated:
        run.count("requests with the prompt truncated", truncated)
    run.finish()


def check_input(record: dict[str, Any]) -> None:
    """Raise ``RecordError`` unless the record is a prompt record or a list record (of any length, even 0 or 1)."""
    kind = record_kind(record)
    if kind not in ("prompt", "list"):
        raise RecordError(
            f"a {kind or 'non-pfx'} record is not accepted here (expected a prompt record, or a list record "
            "with 'prompt' and 'completions')",
            None,
            f"{kind or 'unknown'} record",
        )
    if "prompt" not in record:
        raise RecordError("missing field 'prompt'", "prompt", "missing prompt")
    check_text(record["prompt"], "prompt", allow_empty_conversation=True)
    completions = record.get("completions")
    if completions is None:
        return
    if not isinstance(completions, list):
        raise RecordError(f"field 'completions': expected a list, got {json_type_name(completions)}", "completions",
                          "invalid completions")
    for index, completion in enumerate(completions):
        check_text(completion, f"completions[{index}]")


def add_completions(record: dict[str, Any], completions: list[Completion], with_logprobs: bool, model: str,
                    run: Run) -> dict[str, Any]:
    """Return the record as a list record with ``completions`` appended.

    ``scores``, ``ranks``, ``completion_logps`` and ``meta.models`` (the model
    that wrote each completion) stay aligned with ``completions``: entries
    for the new completions are added, and null is used where a value is unknown.
    """
    existing = list(record.get("completions") or [])
    new_answers = [_answer(record["prompt"], completion.text) for completion in completions]
    output = dict(record)
    output["completions"] = existing + new_answers
    for field in ("scores", "ranks"):
        if record.get(field) is not None:
            output[field] = list(record[field]) + [None] * len(new_answers)
    if with_logprobs:
        previous = _aligned(record.get(LOGPS_FIELD), len(existing))
        output[LOGPS_FIELD] = previous + [completion.logprob_sum for completion in completions]
    meta = record.get("meta")
    if meta is None or isinstance(meta, dict):
        meta = dict(meta or {})
        meta[LIST_MODELS_FIELD] = _aligned(meta.get(LIST_MODELS_FIELD), len(existing)) + [model] * len(new_answers)
        output["meta"] = meta
    for completion in completions:
        if completion.finish_reason == "length":
            run.count("cut at --max-new-tokens")
        if not completion.text.strip():
            run.count("empty completions")
    run.count("completions added", len(completions))
    return output


def _aligned(values: Any, count: int) -> list[Any]:
    """Return ``values`` when it is a list of ``count`` entries, else ``count`` nulls."""
    if isinstance(values, list) and len(values) == count:
        return list(values)
    return [None] * count


def _answer(prompt: Text, text: str) -> Text:
    """Return a completion in the prompt's shape: an assistant message after a conversation, else the string."""
    if is_conversation(prompt):
        return [{"role": "assistant", "content": text}]
    return text
