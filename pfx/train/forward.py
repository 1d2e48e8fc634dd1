"""Batch sequences for the model and compute their answer log-probs, packed where exact.

Packing puts several sequences in one row with ``position_ids`` restarting at
0 for each, and no attention mask. transformers (5.x, sdpa, eager and flash
attention) then builds a block-diagonal causal mask from the position resets,
so a token attends only to its own sequence. Rows are filled first-fit
decreasing up to the longest sequence of the batch, so a batch costs about
as much attention as a padded one but has almost no padding tokens.
``packing_is_exact`` checks on the real model that packed and separate
log-probs agree; where they do not, batches are right-padded instead.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence as Seq

import torch
import torch.nn.functional as F

from pfx.train.data import Sequence


@dataclass
class Batch:
    """Model inputs of shape (rows, width) for N sequences."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None  # None when packed
    answer_mask: torch.Tensor  # bool, True at answer tokens that are scored
    sequence_index: torch.Tensor  # which of the N sequences each token belongs to; -1 at padding
    sequences: int
    tokens: int  # non-padding tokens


def make_batch(sequences: Seq[Sequence], pad_id: int, packed: bool, row_width: int | None = None) -> Batch:
    """Lay out sequences in rows, packed (first-fit decreasing) or one per row, right-padded.

    Packed rows hold up to ``row_width`` tokens, by default the longest sequence's length.
    """
    lengths = [len(sequence) for sequence in sequences]
    width = max(max(lengths), row_width or 0)
    rows: list[list[int]] = []
    if packed:
        room: list[int] = []
        for index in sorted(range(len(sequences)), key=lambda i: -lengths[i]):
            for row, free in enumerate(room):
                if lengths[index] <= free:
                    rows[row].append(index)
                    room[row] -= lengths[index]
                    break
            else:
                rows.append([index])
                room.append(width - lengths[index])
    else:
        rows = [[index] for index in range(len(sequences))]

    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    answer_mask = torch.zeros(shape, dtype=torch.bool)
    sequence_index = torch.full(shape, -1, dtype=torch.long)
    for row, members in enumerate(rows):
        start = 0
        for index in members:
            sequence = sequences[index]
            end = start + lengths[index]
            input_ids[row, start:end] = torch.tensor(sequence.prompt_ids + sequence.answer_ids, dtype=torch.long)
            position_ids[row, start:end] = torch.arange(lengths[index])
            # A sequence's first token has no predecessor of its own, so it is never scored.
            answer_start = max(start + len(sequence.prompt_ids), start + 1)
            answer_mask[row, answer_start:end] = True
            sequence_index[row, start:end] = index
            start = end
        # Padding continues the last sequence's positions: later tokens are never attended by earlier ones.
        position_ids[row, start:] = position_ids[row, start - 1] + 1 + torch.arange(width - start)
    attention_mask = None if packed else (sequence_index >= 0).long()
    return Batch(input_ids, position_ids, attention_mask, answer_mask, sequence_index, len(sequences), sum(lengths))


def sequence_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sum, count) of answer-token log-probs per sequence, shape (N,), differentiable.

    Logits are computed only at positions that predict an answer token in
    some row (``logits_to_keep``), which skips most prompt positions.
    """
    device = next(model.parameters()).device
    input_ids = batch.input_ids.to(device)
    targets = batch.answer_mask[:, 1:].any(dim=0).nonzero().squeeze(1) + 1  # positions of scored tokens
    kwargs: dict[str, Any] = {"input_ids": input_ids, "position_ids": batch.position_ids.to(device), "use_cache": False}
    if batch.attention_mask is not None:
        kwargs["attention_mask"] = batch.attention_mask.to(device)
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = (targets - 1).to(device)
        logits = model(**kwargs).logits
    else:
        logits = model(**kwargs).logits[:, (targets - 1).to(device)]
    labels = input_ids[:, targets.to(device)]
    per_token = -F.cross_entropy(logits.transpose(1, 2).float(), labels, reduction="none")
    mask = batch.answer_mask[:, targets].to(device)
    index = batch.sequence_index[:, targets].to(device)[mask]
    sums = torch.zeros(batch.sequences, dtype=per_token.dtype, device=device).index_add(0, index, per_token[mask])
    counts = torch.zeros(batch.sequences, dtype=torch.long, device=device).index_add(
        0, index, torch.ones_like(index))
    return sums, counts


def packing_is_exact(model: Any, sequences: Seq[Sequence], pad_id: int, tolerance: float = 1e-3) -> bool:
    """Check that packing two sequences in one row gives each the log-probs it gets alone.

    A model whose attention ignores restarting ``position_ids`` would let the
    second sequence attend to the first and fail this check.
    """
    sample = [Sequence(s.prompt_ids[-24:] or s.prompt_ids, s.answer_ids[:8]) for s in sequences[:2]]
    if len(sample) < 2:
        return True
    with torch.no_grad():
        apart, _ = sequence_logps(model, make_batch(sample, pad_id, packed=False))
        one_row = make_batch(sample, pad_id, packed=True, row_width=sum(len(s) for s in sample))
        joined, _ = sequence_logps(model, one_row)
    scale = max(1.0, float(apart.abs().max()))
    return bool((apart - joined).abs().max() <= tolerance * scale)


_LOGITS_TO_KEEP: dict[type, bool] = {}


def _accepts_logits_to_keep(model: Any) -> bool:
    kind = type(model)
    if kind not in _LOGITS_TO_KEEP:
        forward = getattr(model, "get_base_model", lambda: model)().forward
        _LOGITS_TO_KEEP[kind] = "logits_to_keep" in inspect.signature(forward).parameters
    return _LOGITS_TO_KEEP[kind]
