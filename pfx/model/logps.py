"""Sequence log-probabilities of answer tokens, batched, for scoring, labeling and training.

``logπ(y|x) = Σ_t log π(y_t | x, y_<t)`` over the answer tokens only; the
prompt and padding are masked out. ``token_logps`` is the pure, differentiable
core that training reuses. ``answer_logps`` and ``pair_logps`` run a model
without gradients over many records: sorted by length so that a batch holds
sequences of similar length, padded, with the results returned in input
order. ``pair_logps`` and ``group_logps`` run each prompt once and reuse its
key-value cache for every answer to it (chosen and rejected, or a list of
completions).

An answer token at position 0 of its sequence has no preceding token to be
predicted from, so it is not counted; that happens only when the prompt has no
token at all (an empty prompt and a tokenizer without BOS).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from pfx.model.tokenize import Encoded, EncodedPair


@dataclass(frozen=True)
class AnswerLogp:
    """Log-probability of one answer: ``sum`` over its tokens, ``mean`` per token, token ``count``."""

    sum: float
    mean: float
    count: int


def token_logps(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum the log-probs of the answer tokens of each sequence.

    Args:
        logits: ``(batch, seq, vocab)`` model outputs; position t predicts token t + 1.
        input_ids: ``(batch, seq)`` token ids.
        answer_mask: ``(batch, seq)`` true at the answer tokens.

    Returns:
        ``(sum, count)``, each of shape ``(batch,)``: the summed log-probs (float32,
        differentiable) and the number of answer tokens that were scored.
    """
    labels = input_ids[:, 1:]
    mask = answer_mask[:, 1:].to(torch.bool)
    shifted = logits[:, :-1, :]
    # cross_entropy computes log-softmax and the gather in one fused step.
    per_token = -F.cross_entropy(shifted.transpose(1, 2).float(), labels, reduction="none")
    per_token = per_token.masked_fill(~mask, 0.0)
    return per_token.sum(-1), mask.sum(-1)


def answer_logps(model: Any, encoded: Sequence[Encoded], batch_size: int) -> list[AnswerLogp]:
    """Return the answer log-probs of each (prompt, answer) in input order, without gradients."""
    results: list[AnswerLogp | None] = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids), reverse=True)
    keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            indices = order[start:start + batch_size]
            sums, counts = _answer_batch(model, [encoded[i] for i in indices], keeps_logits)
            for index, total, count in zip(indices, sums.tolist(), counts.tolist()):
                results[index] = _answer_logp(total, count)
    return results  # type: ignore[return-value]


def _answer_batch(model: Any, batch: Sequence[Encoded], keeps_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sums, counts) of one batch of whole sequences.

    Sequences are left-padded so every answer ends in the last column. Then only
    the last (longest answer + 1) columns need logits. When the model accepts
    ``logits_to_keep``, that saves the output layer's work on prompt tokens.
    """
    input_ids, attention_mask = pad_left([item.input_ids for item in batch], model_device(model))
    width = input_ids.shape[1]
    answer_mask = torch.zeros_like(attention_mask)
    for row, item in enumerate(batch):
        # A token at position 0 of its sequence has no preceding token to be predicted from.
        first = width - len(item.input_ids) + max(len(item.prompt_ids), 1)
        answer_mask[row, first:] = 1
    positions = _positions(attention_mask)
    if not keeps_logits:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits
        return token_logps(logits, input_ids, answer_mask)
    keep = min(width, max(len(item.answer_ids) for item in batch) + 1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                   logits_to_keep=keep).logits
    return token_logps(logits, input_ids[:, width - keep:], answer_mask[:, width - keep:])


def pair_logps(model: Any, pairs: Sequence[EncodedPair], batch_size: int,
               reuse_prompt: bool | None = None) -> list[tuple[AnswerLogp, AnswerLogp]]:
    """Return (chosen, rejected) answer log-probs for each pair in input order, without gradients.

    With ``reuse_prompt`` (default: when the model supports a key-value cache)
    each batch of prompts runs once, and its cache serves both answers. Without
    it, prompt + chosen and prompt + rejected run as separate sequences.
    """
    groups = [(pair.prompt_ids, [pair.chosen_ids, pair.rejected_ids]) for pair in pairs]
    return [(chosen, rejected) for chosen, rejected in group_logps(model, groups, batch_size, reuse_prompt)]


def group_logps(model: Any, groups: Sequence[tuple[list[int], list[list[int]]]], batch_size: int,
                reuse_prompt: bool | None = None) -> list[list[AnswerLogp]]:
    """Return the log-probs of each answer of each (prompt_ids, [answer_ids, ...]) group, in input order.

    A group is a pair, a list of completions or a single answer. With
    ``reuse_prompt`` (default: when the model supports a key-value cache) a
    batch of ``batch_size`` groups runs its prompts once, and one more forward
    pass scores all their answers on the cached prompts.
    """
    if reuse_prompt is None:
        reuse_prompt = supports_cache(model)
    # An empty prompt leaves nothing to cache, so such groups take the plain path.
    cached = [i for i, (prompt, _) in enumerate(groups) if reuse_prompt and prompt]
    plain = [i for i, (prompt, _) in enumerate(groups) if not (reuse_prompt and prompt)]

    results: list[list[AnswerLogp]] = [[] for _ in groups]
    for index, values in zip(plain, _groups_without_cache(model, [groups[i] for i in plain], batch_size)):
        results[index] = values
    # The answer pass has a row per answer, so batches are formed by answer length first: a
    # short-prompt group with long answers would pad every answer row of its batch.
    order = sorted(cached, key=lambda i: (max(map(len, groups[i][1])), len(groups[i][0])), reverse=True)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            indices = order[start:start + batch_size]
            for index, values in zip(indices, _group_batch_with_cache(model, [groups[i] for i in indices])):
                results[index] = values
    return results


def supports_cache(model: Any) -> bool:
    """True when the model's forward accepts a key-value cache (most decoder-only models)."""
    return _cache_argument(model) is not None and not getattr(model.config, "is_encoder_decoder", False)


def _groups_without_cache(model: Any, groups: Sequence[tuple[list[int], list[list[int]]]],
                          batch_size: int) -> list[list[AnswerLogp]]:
    sequences = [Encoded(prompt, answer) for prompt, answers in groups for answer in answers]
    flat = answer_logps(model, sequences, batch_size)
    out, start = [], 0
    for _, answers in groups:
        out.append(flat[start:start + len(answers)])
        start += len(answers)
    return out


# -- the cached path ----------------------------------------------------------


def _group_batch_with_cache(model: Any, groups: list[tuple[list[int], list[list[int]]]]) -> list[list[AnswerLogp]]:
    device = model_device(model)
    parameters = inspect.signature(model.forward).parameters

    # Left-padded prompts all end at the last column, so that column's logits predict
    # every first answer token and the others need not be computed.
    prompt_lengths = torch.tensor([len(prompt) for prompt, _ in groups], device=device)
    prompt_ids, prompt_mask = pad_left([prompt for prompt, _ in groups], device)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    output = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=_positions(prompt_mask),
                   use_cache=True, **extra)
    cache = getattr(output, "cache", None) or getattr(output, "past_key_values", None)
    last_logits = output.logits[:, -1, :]
    del output
    if not hasattr(cache, "batch_select_indices"):
        # NOTE: a cache that cannot be re-indexed by batch row loses the reuse for this batch.
        return _groups_without_cache(model, groups, len(groups))

    # One row per answer: row r continues the prompt of group owner[r].
    sizes = torch.tensor([len(answers) for _, answers in groups], device=device)
    owner = torch.repeat_interleave(torch.arange(len(groups), device=device), sizes)
    cache.batch_select_indices(owner)
    answers = [ids for _, group_answers in groups for ids in group_answers]
    values = _answers_on_cache(model, _cache_argument(model), cache, answers, prompt_mask[owner],
                               prompt_lengths[owner], last_logits[owner])
    out, start = [], 0
    for _, group_answers in groups:
        out.append(values[start:start + len(group_answers)])
        start += len(group_answers)
    return out


def _answers_on_cache(model: Any, cache_argument: str | None, cache: Any, answers: list[list[int]],
                      prompt_mask: torch.Tensor, prompt_lengths: torch.Tensor,
                      last_logits: torch.Tensor) -> list[AnswerLogp]:
    """Score right-padded answers that continue the cached prompts."""
    device = prompt_mask.device
    answer_ids, answer_mask = pad_right(answers, device)
    positions = prompt_lengths[:, None] + torch.arange(answer_ids.shape[1], device=device)[None, :]
    logits = model(input_ids=answer_ids, attention_mask=torch.cat([prompt_mask, answer_mask], dim=1),
                   position_ids=positions, use_cache=True, **{cache_argument or "past_key_values": cache}).logits
    # The answer pass predicts answer tokens 1 and later; the prompt's last logits predict token 0.
    sums, counts = token_logps(logits, answer_ids, answer_mask)
    first = -F.cross_entropy(last_logits.float(), answer_ids[:, 0], reduction="none")
    has_first = answer_mask[:, 0]
    sums, counts = sums + first * has_first, counts + has_first
    return [_answer_logp(total, count) for total, count in zip(sums.tolist(), counts.tolist())]


def _cache_argument(model: Any) -> str | None:
    # transformers 5.25 calls the forward argument cache (past_key_values is deprecated); older releases use past_key_values.
    parameters = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return "past_key_values"
    return None


# -- padding --------------------------------------------------------------------


def pad_right(sequences: Sequence[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists with 0; the mask is what keeps padding out of attention and sums."""
    width = max(len(ids) for ids in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, :len(sequence)] = 1
    return ids.to(device), mask.to(device)


def pad_left(sequences: Sequence[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists with 0, so every sequence ends in the last column."""
    width = max(len(ids) for ids in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if sequence:
            ids[row, width - len(sequence):] = torch.tensor(sequence, dtype=torch.long)
            mask[row, width - len(sequence):] = 1
    return ids.to(device), mask.to(device)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _answer_logp(total: float, count: int) -> AnswerLogp:
    return AnswerLogp(sum=total, mean=total / count if count else float("nan"), count=int(count))


def model_device(model: Any) -> torch.device:
    return next(model.parameters()).device
