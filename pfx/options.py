"""Option bundles shared by commands, defined once so a flag means the same everywhere.

``io_options`` adds the input files and the I/O flags of every record command
and passes them to the command as one ``IOOptions`` named ``io``.
``model_options`` adds the model flags of every model command as one
``ModelOptions`` named ``model_options``.
``pairs_options`` adds the list-to-pairs and tie flags as one ``PairOptions``
named ``pair_options``.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import click

from pfx.errors import InputNotFound
from pfx.model.config import ModelOptions
from pfx.runner import IOOptions
from pfx.transforms import PAIR_STRATEGIES, TIE_POLICIES, PairOptions

F = Callable[..., Any]


def io_options(func: F | None = None, *, with_output: bool = True) -> Any:
    """Add FILE..., -o, --on-error, --rejects, --summary, --quiet, --progress.

    ``@io_options(with_output=False)`` leaves out -o, for a command whose
    output is not a record stream (train-dpo writes a model directory).
    """
    if func is None:
        return lambda inner: io_options(inner, with_output=with_output)

    @functools.wraps(func)
    def wrapper(*args: Any, files: tuple[str, ...], on_error: str, rejects: str | None,
                summary_path: str | None, quiet: bool, progress: bool, output: str | None = None, **kwargs: Any) -> Any:
        if rejects and on_error != "skip":
            raise click.UsageError("--rejects needs --on-error skip (under fail the first bad record stops the run)")
        # A mistyped path fails here, before a model command spends minutes loading its model.
        for path in files:
            if path != "-" and not os.path.exists(path):
                raise InputNotFound(path)
        io = IOOptions(files=files, output=output, on_error=on_error, rejects=rejects, summary=summary_path,
                       quiet=quiet, progress=progress)
        return func(*args, io=io, **kwargs)

    decorators = [
        click.argument("files", nargs=-1, type=click.Path(allow_dash=True), metavar="[FILE]..."),
        click.option("-o", "--output", type=click.Path(allow_dash=True), help="Write records to FILE (.gz/.zst compress) instead of stdout."),
        click.option(
            "--on-error",
            type=click.Choice(["fail", "skip"]),
            default="fail",
            show_default=True,
            help="fail: stop at the first bad record (exit 65). skip: set it aside in --rejects and go on.",
        ),
        click.option("--rejects", type=click.Path(), help="Write each rejected input line, with the reason, to FILE (JSONL)."),
        click.option("--summary", "summary_path", type=click.Path(), help="Write the run summary as JSON to FILE."),
        click.option("-q", "--quiet", is_flag=True, help="Print nothing on stderr but errors."),
        click.option("--progress", is_flag=True, help="Show a progress bar on stderr even when it is not a terminal."),
    ]
    if not with_output:
        decorators.pop(1)
    for decorator in reversed(decorators):
        wrapper = decorator(wrapper)
    return wrapper


MAX_LENGTH_HELP = "Maximum tokens of prompt + answer; longer prompts are truncated per --truncation."
TRUNCATION_HELP = "Which end of a too-long prompt to keep."


def model_options(func: F | None = None, *, max_length_help: str = MAX_LENGTH_HELP,
                  truncation_help: str = TRUNCATION_HELP) -> Any:
    """Add --model, --revision, --device, --dtype, --batch-size, --max-length, --chat-template, --seed, --trust-remote-code, --truncation.

    ``@model_options(max_length_help=..., truncation_help=...)`` words those two
    options for a command that treats a long prompt differently (judge rejects it).
    """
    if func is None:
        return lambda inner: model_options(inner, max_length_help=max_length_help, truncation_help=truncation_help)

    @click.option("--model", "model_name", metavar="PATH_OR_HUB_ID", help="Model directory or Hugging Face hub id.")
    @click.option("--revision", help="Hub revision (branch, tag or commit) of --model.")
    @click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
                  help="Device to run on; auto picks cuda, then mps, then cpu.")
    @click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto", show_default=True,
                  help="Weights dtype; auto is bfloat16 where the device computes it natively, float32 on other CPUs.")
    @click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Records per forward batch.")
    @click.option("--max-length", type=click.IntRange(min=2), default=1024, show_default=True,
                  help=max_length_help)
    @click.option("--truncation", type=click.Choice(["keep-end", "keep-start"]), default="keep-end", show_default=True,
                  help=truncation_help)
    @click.option("--chat-template", type=click.Path(exists=True, dir_okay=False),
                  help="Jinja chat template FILE that overrides the tokenizer's.")
    @click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
    @click.option("--trust-remote-code", is_flag=True, help="Allow model code from the hub to run (off by default).")
    @functools.wraps(func)
    def wrapper(*args: Any, model_name: str | None, revision: str | None, device: str, dtype: str, batch_size: int,
                max_length: int, truncation: str, chat_template: str | None, seed: int, trust_remote_code: bool,
                **kwargs: Any) -> Any:
        options = ModelOptions(model=model_name, revision=revision, device=device, dtype=dtype, batch_size=batch_size,
                               max_length=max_length, truncation=truncation, chat_template=chat_template, seed=seed,
                               trust_remote_code=trust_remote_code)
        return func(*args, model_options=options, **kwargs)

    return wrapper


def pairs_options(func: F) -> F:
    """Add --pairs, --min-margin, --seed and --ties."""

    @click.option("--pairs", "strategy", type=click.Choice(PAIR_STRATEGIES), default="best-worst", show_default=True,
                  help="How a scored or ranked list becomes pairs: best-worst (one pair), best-random, "
                       "all (every ordered pair) or adjacent (each answer against the next one down).")
    @click.option("--min-margin", type=click.FloatRange(min=0), default=0.0, show_default=True,
                  help="Make a pair only when the score difference is at least this much (ties aside).")
    @click.option("--seed", type=int, default=0, show_default=True, help="Random seed for --pairs best-random.")
    @click.option("--ties", type=click.Choice(TIE_POLICIES), default="drop", show_default=True,
                  help="drop: leave out ties (equal scores, identical answers, a tie vote) and count them. "
                       "keep: write them and count them.")
    @functools.wraps(func)
    def wrapper(*args: Any, strategy: str, min_margin: float, seed: int, ties: str, **kwargs: Any) -> Any:
        options = PairOptions(strategy=strategy, min_margin=min_margin, seed=seed, ties=ties)
        return func(*args, pair_options=options, **kwargs)

    return wrapper
