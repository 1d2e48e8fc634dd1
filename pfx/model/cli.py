"""Command-line pieces shared by the model commands: ``--shard K/N`` and batching of input items.

Importing this module does not import torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

import click

F = Callable[..., Any]
T = TypeVar("T")

OTHER_SHARD = "in other shards"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the records at positions index, index + count, index + 2·count, ..."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: str | None) -> Shard:
    """Parse ``K/N`` (0 <= K < N) into a ``Shard``; raise ``click.BadParameter`` otherwise."""
    if value is None:
        return Shard()
    parts = value.split("/")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise click.BadParameter(f"{value!r} is not K/N with whole numbers, e.g. 0/4", param_hint="--shard")
    index, count = int(parts[0]), int(parts[1])
    if count < 1 or index >= count:
        raise click.BadParameter(f"{value!r}: expected 0 <= K < N, e.g. 0/4 .. 3/4", param_hint="--shard")
    return Shard(index, count)


def shard_option(func: F) -> F:
    """Add ``--shard K/N`` and pass it to the command as a ``Shard`` named ``shard``."""

    @click.option("--shard", "shard_text", metavar="K/N",
                  help="Take every N-th input record starting at record K (K from 0), so N processes split one input.")
    @functools.wraps(func)
    def wrapper(*args: Any, shard_text: str | None, **kwargs: Any) -> Any:
        return func(*args, shard=parse_shard(shard_text), **kwargs)

    return wrapper


def take_shard(items: Iterable[T], shard: Shard, on_skip: Callable[[], None] | None = None) -> Iterator[T]:
    """Yield the items of ``shard`` by input position; call ``on_skip`` for each item of another shard."""
    for position, item in enumerate(items):
        if position % shard.count == shard.index:
            yield item
        elif on_skip is not None:
            on_skip()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of ``size`` items (the last one may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
