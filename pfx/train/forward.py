"""Lay out training sequences for the model and compute their answer log-probs.

Three layouts, tried in this order and kept only when exact on the real model:

- ``shared-prompt``: one example's prompt appears once, followed by each of its
  answers (chosen and rejected, or a list's completions). Every answer's
  position ids continue from the end of the prompt, and a 4D attention mask
  lets an answer token see the prompt and its own earlier tokens only. For
  pairs with long prompts this runs about half the tokens of the other layouts.
- ``packed``: prompt + answer sequences packed into rows with ``position_ids``
  restarting at 0 per sequence and no attention mask; transformers (5.x)
  then builds a block-diagonal causal mask, so no token sees another sequence.
- ``padded``: one sequence per row, right-padded, with a 2D attention mask.

Rows of the first two layouts are filled first-fit decreasing up to the
longest unit of the batch, so a batch has almost no padding tokens.
``layout_is_exact`` compares a layout's log-probs with the padded layout's.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence as Seq

import torch
import torch.nn.functional as F

LAYOUTS = ("shared-prompt", "packed", "padded")

# One prompt and the answers that follow it.
Unit = tuple[list[int], list[list[int]]]


@dataclass
class Batch:
    """Model inputs of shape (rows, width) for N answers, and where each scored token is."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None  # 2D (padded), 4D additive (shared-prompt), None (packed)
    score_rows: torch.Tensor  # (T,) row of each scored answer token
    score_predecessors: torch.Tensor  # (T,) position whose logits predict it
    score_targets: torch.Tensor  # (T,) its token id
    score_answers: torch.Tensor  # (T,) which of the N answers it belongs to
    answers: int
    tokens: int  # non-padding tokens


def _split(units: Seq[Unit]) -> list[Unit]:
    return [(prompt, [answer]) for prompt, answers in units for answer in answers]


def _unit_length(unit: Unit) -> int:
    return len(unit[0]) + sum(len(answer) for answer in unit[1])


def make_batch(units: Seq[Unit], pad_id: int, layout: str, row_width: int | None = None) -> Batch:
    """Lay out the answers of ``units`` (numbered in order) in rows for one forward pass.

    Rows of packed layouts hold up to ``row_width`` tokens, by default the longest unit's length.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout != "shared-prompt":
        units = _split(units)
    lengths = [_unit_length(unit) for unit in units]
    width = max(max(lengths), row_width or 0)
    rows = _fill_rows(lengths, width) if layout != "padded" else [[index] for index in range(len(units))]

    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    owner = torch.full(shape, -1, dtype=torch.long)  # unit index of each token, -1 at padding
    part = torch.zeros(shape, dtype=torch.long)  # 0 for prompt tokens, i + 1 for the i-th answer's tokens
    scored: list[torch.Tensor] = []  # rows of (row, predecessor, target position, answer number)
    first_answer = [0]
    for unit in units:
        first_answer.append(first_answer[-1] + len(unit[1]))

    for row, members in enumerate(rows):
        start = 0
        for index in members:
            prompt, answers = units[index]
            end = start + len(prompt)
            input_ids[row, start:end] = torch.tensor(prompt, dtype=torch.long)
            position_ids[row, start:end] = torch.arange(len(prompt))
            owner[row, start:end] = index
            for number, answer in enumerate(answers):
                answer_start = end
                end = answer_start + len(answer)
                input_ids[row, answer_start:end] = torch.tensor(answer, dtype=torch.long)
                position_ids[row, answer_start:end] = len(prompt) + torch.arange(len(answer))
                owner[row, answer_start:end] = index
                part[row, answer_start:end] = number + 1
                # The first answer token is predicted from the last prompt token; with no prompt it is not scored.
                targets = torch.arange(answer_start, end)
                predecessors = targets - 1
                if prompt:
                    predecessors[0] = start + len(prompt) - 1
                else:
                    targets, predecessors = targets[1:], predecessors[1:]
                scored.append(torch.stack([torch.full_like(targets, row), predecessors, targets,
                                           torch.full_like(targets, first_answer[index] + number)], dim=1))
            start = end
        # Padding continues the last positions: earlier tokens never attend to later ones.
        last = position_ids[row, start - 1] if start else -1
        position_ids[row, start:] = last + 1 + torch.arange(width - start)

    attention_mask: torch.Tensor | None = None
    if layout == "padded":
        attention_mask = (owner >= 0).long()
    elif layout == "shared-prompt":
        attention_mask = _shared_prompt_mask(owner, part)
    table = torch.cat(scored) if scored else torch.zeros((0, 4), dtype=torch.long)
    return Batch(input_ids, position_ids, attention_mask, table[:, 0], table[:, 1],
                 input_ids[table[:, 0], table[:, 2]], table[:, 3], first_answer[-1], sum(lengths))


def _fill_rows(lengths: list[int], width: int) -> list[list[int]]:
    """First-fit decreasing: put each unit, longest first, in the first row with room."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(width - lengths[index])
    return rows


def _shared_prompt_mask(owner: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Return a (rows, 1, width, width) boolean mask: same unit, causal, and prompt or own answer."""
    width = owner.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_unit = (owner[:, :, None] == owner[:, None, :]) & (owner[:, None, :] >= 0)
    visible_part = (part[:, None, :] == 0) | (part[:, None, :] == part[:, :, None])
    allowed = same_unit & visible_part & causal
    # A padding query would see no key at all; letting it see itself keeps softmax finite.
    allowed |= torch.eye(width, dtype=torch.bool)
    return allowed[:, None, :, :]


def sequence_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sum, count) of answer-token log-probs per answer, shape (N,), differentiable.

    Logits are computed only at positions that predict a scored token
    (``logits_to_keep``), which skips most prompt positions.
    """
    parameter = next(model.parameters())
    device = parameter.device
    if batch.score_rows.numel() == 0:
        # No answer token can be scored; the caller reports the records instead of running the model.
        zeros = torch.zeros(batch.answers, device=device)
        return zeros, zeros.long()
    kept, columns = torch.unique(batch.score_predecessors, return_inverse=True)
    kwargs: dict[str, Any] = {"input_ids": batch.input_ids.to(device), "position_ids": batch.position_ids.to(device),
                              "use_cache": False}
    if batch.attention_mask is not None:
        mask = batch.attention_mask.to(device)
        if mask.ndim == 4:
            # An additive float mask works with eager and sdpa attention alike.
            mask = torch.zeros(mask.shape, dtype=parameter.dtype, device=device).masked_fill(
                ~mask, torch.finfo(parameter.dtype).min)
        kwargs["attention_mask"] = mask
    if _accepts_logits_to_keep(model):
        logits = model(**kwargs, logits_to_keep=kept.to(device)).logits
    else:
        logits = model(**kwargs).logits[:, kept.to(device)]
    selected = logits[batch.score_rows.to(device), columns.to(device)]
    per_token = -F.cross_entropy(selected.float(), batch.score_targets.to(device), reduction="none")
    answers = batch.score_answers.to(device)
    sums = torch.zeros(batch.answers, dtype=per_token.dtype, device=device).index_add(0, answers, per_token)
    counts = torch.bincount(answers, minlength=batch.answers)
    return sums, counts


def layout_is_exact(model: Any, units: Seq[Unit], pad_id: int, layout: str, tolerance: float = 1e-3) -> bool:
    """Check on short cuts of ``units`` that ``layout`` gives the log-probs of the padded layout.

    All sample units go in one row, so a model whose attention ignores the
    layout's mask or position resets lets tokens see other answers and fails.
    """
    sample = [(prompt[-24:], [answer[:8] for answer in answers]) for prompt, answers in units[:2]]
    if layout == "padded" or not sample:
        return True
    with torch.no_grad():
        expected, _ = sequence_logps(model, make_batch(sample, pad_id, "padded"))
        one_row = sum(_unit_length(unit) for unit in sample)
        actual, _ = sequence_logps(model, make_batch(sample, pad_id, layout, row_width=one_row))
    scale = max(1.0, float(expected.abs().max()))
    return bool((expected - actual).abs().max() <= tolerance * scale)


_LOGITS_TO_KEEP: dict[type, bool] = {}


def _accepts_logits_to_keep(model: Any) -> bool:
    kind = type(model)
    if kind not in _LOGITS_TO_KEEP:
        forward = getattr(model, "get_base_model", lambda: model)().forward
        _LOGITS_TO_KEEP[kind] = "logits_to_keep" in inspect.signature(forward).parameters
    return _LOGITS_TO_KEEP[kind]
