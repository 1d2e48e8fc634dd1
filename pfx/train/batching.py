"""The order of training batches: shuffled per epoch, grouped by length, split across processes."""

from __future__ import annotations

import random
from typing import Sequence

# Batches are formed inside shuffled chunks of this many batches: big enough to
# group similar lengths, small enough to keep the order random across the data.
CHUNK_BATCHES = 64


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Return the batches (lists of example indices) of one epoch, the same for the same arguments.

    Examples are shuffled, cut into chunks of ``CHUNK_BATCHES`` batches, sorted by
    length inside each chunk (longest first) so that a batch contains similar
    lengths, and the batches are shuffled again. Only the last batch can be short.
    """
    generator = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    generator.shuffle(order)
    chunk = batch_size * CHUNK_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        group = sorted(order[start:start + chunk], key=lambda index: -lengths[index])
        batches.extend(group[offset:offset + batch_size] for offset in range(0, len(group), batch_size))
    last = batches.pop() if batches and len(batches[-1]) < batch_size else None
    generator.shuffle(batches)
    if last is not None:
        batches.append(last)
    return batches


def shard(batch: list[int], rank: int, world_size: int) -> list[int]:
    """Return this process's part of a global batch: every world_size-th example from ``rank``."""
    return batch[rank::world_size]
