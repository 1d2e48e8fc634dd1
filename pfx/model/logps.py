"""Sequence log-probabilities of answer tokens, batched, for scoring and labeling.

``logπ(y|x) = Σ_t log π(y_t | x, y_<t)`` over the answer tokens only; the
prompt and padding are masked out. ``token_logps`` is the pure, differentiable
core. ``answer_logps`` and ``pair_logps`` run a model without gradients over
many records: sorted by length so that a batch contains sequences of similar
length, right-padded, with the results returned in input order.
``pair_logps`` and ``group_logps`` can run each prompt once and reuse its
key-value cache for every answer to it (chosen and rejected, or a list of
completions); by default they do so where ``reuse_pays`` estimates that to
be cheaper than running prompt + answer as whole sequences.

An answer token at position 0 of its sequence has no preceding token to be
predicted from, so it is not counted; that happens only when the prompt has no
token at all (an empty prompt and a tokenizer without BOS).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

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
    mask = answer_mask[:, 1:].to(torch.bool)
    per_token = _label_logps(logits[:, :-1, :], input_ids[:, 1:])
    per_token = per_token.masked_fill(~mask, 0.0)
    return per_token.sum(-1), mask.sum(-1)


def _label_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[label]`` for each position, without materialising the log-softmax."""
    logits = logits.float()
    return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def answer_logps(model: Any, encoded: Sequence[Encoded], batch_size: int) -> list[AnswerLogp]:
    """Return the answer log-probs of each (prompt, answer) in input order, without gradients."""
    results: list[AnswerLogp | None] = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids), reverse=True)
    keeps_logits = _keeps_logits(model)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            indices = order[start:start + batch_size]
            sums, counts = _answer_batch(model, [encoded[i] for i in indices], keeps_logits)
            for index, total, count in zip(indices, sums.tolist(), counts.tolist()):
                results[index] = _answer_logp(total, count)
    return results  # type: ignore[return-value]


def _answer_batch(model: Any, batch: Sequence[Encoded], keeps_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sums, counts) of one batch of whole sequences.

    Sequences are right-padded and run without an attention mask. In a causal
    model a token attends only to the tokens before it, so padding after the
    last real token changes nothing that is scored, and positions count from 0
    as in an unpadded pass. Without a mask, attention can take its causal kernel,
    which skips the masked half of the score matrix. A padding mask would force
    the general kernel. Logits are needed only from the column before the first
    answer token on; when the model accepts ``logits_to_keep``, the output layer
    skips the columns before it.
    """
    input_ids, attention_mask = pad_right([item.input_ids for item in batch], model_device(model))
    answer_mask = torch.zeros_like(attention_mask)
    for row, item in enumerate(batch):
        # A token at position 0 of its sequence has no preceding token to be predicted from.
        answer_mask[row, max(len(item.prompt_ids), 1):len(item.input_ids)] = 1
    first = min(max(len(item.prompt_ids), 1) for item in batch) - 1
    width = input_ids.shape[1]
    if keeps_logits:
        logits = model(input_ids=input_ids, logits_to_keep=width - first).logits
    else:
        logits = model(input_ids=input_ids).logits[:, first:]
    return token_logps(logits, input_ids[:, first:], answer_mask[:, first:])


def pair_logps(model: Any, pairs: Sequence[EncodedPair], batch_size: int,
               reuse_prompt: bool | None = None) -> list[tuple[AnswerLogp, AnswerLogp]]:
    """Return (chosen, rejected) answer log-probs for each pair in input order, without gradients.

    ``reuse_prompt`` is as in ``group_logps``.
    """
    groups = [(pair.prompt_ids, [pair.chosen_ids, pair.rejected_ids]) for pair in pairs]
    return [(chosen, rejected) for chosen, rejected in group_logps(model, groups, batch_size, reuse_prompt)]


def group_logps(model: Any, groups: Sequence[tuple[list[int], list[list[int]]]], batch_size: int,
                reuse_prompt: bool | None = None) -> list[list[AnswerLogp]]:
    """Return the log-probs of each answer of each (prompt_ids, [answer_ids, ...]) group, in input order.

    A group is a pair, a list of completions or a single answer. Groups with
    the same prompt are merged first and each distinct answer to a prompt is
    scored once (``merge_repeats``): pairs made from one list share answers.
    Groups whose prompt is reused run in batches of ``batch_size`` groups: their
    prompts run once, and one more forward pass scores all their answers on the
    cached prompts. The other groups run each prompt + answer as one sequence.
    ``reuse_prompt`` true or false decides for every group; the default decides
    per group, with ``reuse_pays``, when the model supports a key-value cache.
    """
    merged, places = merge_repeats(groups)
    values = _distinct_group_logps(model, merged, batch_size, reuse_prompt)
    return [[values[group][answer] for answer in answers] for group, answers in places]


# Answers a merged group may collect from several records before a new group starts.
MAX_MERGED_ANSWERS = 16


def merge_repeats(groups: Sequence[tuple[list[int], list[list[int]]]], max_answers: int = MAX_MERGED_ANSWERS
                  ) -> tuple[list[tuple[list[int], list[list[int]]]], list[tuple[int, list[int]]]]:
    """Merge groups that share a prompt, keeping each distinct answer to it once.

    Returns the merged groups and, for each input group, the index of its merged
    group and the index of each of its answers there. A merged group takes in
    more groups only while it contains fewer than ``max_answers`` answers, so one
    prompt shared by many records cannot make a batch of unbounded size. An
    input group is never split.
    """
    merged: list[tuple[list[int], list[list[int]]]] = []
    answer_places: list[dict[tuple[int, ...], int]] = []
    open_group: dict[tuple[int, ...], int] = {}
    places: list[tuple[int, list[int]]] = []
    for prompt, answers in groups:
        key = tuple(prompt)
        group = open_group.get(key)
        if group is None or len(merged[group][1]) >= max_answers:
            group = open_group[key] = len(merged)
            merged.append((prompt, []))
            answer_places.append({})
        indices = []
        for answer in answers:
            index = answer_places[group].setdefault(tuple(answer), len(merged[group][1]))
            if index == len(merged[group][1]):
                merged[group][1].append(answer)
            indices.append(index)
        places.append((group, indices))
    return merged, places


def _distinct_group_logps(model: Any, groups: Sequence[tuple[list[int], list[list[int]]]], batch_size: int,
                          reuse_prompt: bool | None) -> list[list[AnswerLogp]]:
    costs = None
    if reuse_prompt is None:
        reuse_prompt = supports_cache(model)
        costs = pass_costs(model) if reuse_prompt else None

    def reuse(prompt: list[int], answers: list[list[int]]) -> bool:
        if not prompt:  # An empty prompt leaves nothing to cache.
            return False
        if costs is not None:
            return reuse_pays(len(prompt), [len(answer) for answer in answers], costs)
        return reuse_prompt

    reused = [reuse(prompt, answers) for prompt, answers in groups]
    cached = [i for i, flag in enumerate(reused) if flag]
    plain = [i for i, flag in enumerate(reused) if not flag]

    results: list[list[AnswerLogp]] = [[] for _ in groups]
    for index, values in zip(plain, _groups_without_cache(model, [groups[i] for i in plain], batch_size)):
        results[index] = values
    # The answer pass has a row per answer, so batches are formed by answer length first: a
    # short-prompt group with long answers would pad every answer row of its batch.
    order = sorted(cached, key=(lambda i: (max(map(len, groups[i][1])), len(groups[i][0]))), reverse=True)
    with torch.no_grad():
        for indices in _row_batches(order, [len(groups[i][1]) for i in order], 2 * batch_size):
            for index, values in zip(indices, _group_batch_with_cache(model, [groups[i] for i in indices])):
                results[index] = values
    return results


def _row_batches(order: list[int], rows: list[int], max_rows: int) -> Iterator[list[int]]:
    """Cut ``order`` into batches of at most ``max_rows`` answer rows; a larger group goes alone."""
    batch: list[int] = []
    count = 0
    for index, size in zip(order, rows):
        if batch and count + size > max_rows:
            yield batch
            batch, count = [], 0
        batch.append(index)
        count += size
    if batch:
        yield batch


# -- when reusing the prompt pays ---------------------------------------------------


@dataclass(frozen=True)
class PassCosts:
    """Estimated work of a forward pass, in floating-point operations.

    ``per_token``: the weight matrices of all layers, 2 × their parameters
    (embeddings and the output layer excluded: both paths compute logits only
    for answer tokens). ``per_score``: one query-key pair of attention in all
    layers, 4 × heads × head size × layers (the dot product and the weighted
    sum of values).
    """

    per_token: float
    per_score: float


# Attention under an explicit mask costs more per score than causal attention: its
# kernel cannot skip masked blocks and reads the mask. 1.5 is an estimate chosen to match
# configuration (b) of bench/score/RESULTS.md, where reuse for every pair ran 1.58x slower
# than whole sequences (0.64x against 1.01x of the plain loop) on one CPU core.
# NOTE: fitted on one CPU only; GPU kernels may differ.
MASKED_SCORE_COST = 1.5


def pass_costs(model: Any) -> PassCosts | None:
    """Estimate ``PassCosts`` from the model's config; None when the config lacks the sizes."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = getattr(config, "num_attention_heads", None)
    layers = getattr(config, "num_hidden_layers", None)
    hidden = getattr(config, "hidden_size", None)
    if not (isinstance(heads, int) and isinstance(layers, int) and isinstance(hidden, int)) or heads <= 0:
        return None
    head_size = getattr(config, "head_dim", None) or hidden // heads
    embeddings = set()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None:
            embeddings.update(id(parameter) for parameter in module.parameters())
    weights = sum(parameter.numel() for parameter in model.parameters() if id(parameter) not in embeddings)
    return PassCosts(per_token=2.0 * weights, per_score=4.0 * heads * head_size * layers)


def reuse_pays(prompt: int, answers: Sequence[int], costs: PassCosts) -> bool:
    """True when running the prompt once and the answers on its cache is estimated to be cheaper.

    Separate sequences run the prompt once per answer, with causal attention:
    ``Σ (P + A)·token + (P + A)²/2·score``. Reuse runs the prompt once, then
    the answers under a mask over prompt + answer columns:
    ``(P + ΣA)·token + P²/2·score + masked·Σ A(P + A)·score``. Reuse saves the
    repeated prompt's weight work but pays the masked attention of long answers.
    """
    separate = sum((prompt + answer) * costs.per_token + (prompt + answer) ** 2 / 2 * costs.per_score
                   for answer in answers)
    cached = ((prompt + sum(answers)) * costs.per_token
              + (prompt ** 2 / 2 + MASKED_SCORE_COST * sum(answer * (prompt + answer) for answer in answers))
              * costs.per_score)
    return cached < separate


def sliding_window(model: Any) -> int | None:
    """Return the attention window of a model with sliding-window layers, or None."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    window = getattr(config, "sliding_window", None)
    if not isinstance(window, int) or window <= 0 or getattr(config, "use_sliding_window", True) is False:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return window


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
    window = sliding_window(model)
    width = max(len(prompt) for prompt, _ in groups) + max(len(answer) for _, answers in groups for answer in answers)
    if window is not None and width >= window:
        # A sliding-window cache keeps only the last columns of the padded prompt batch, which
        # for a short prompt are padding. Within the window nothing is dropped, so reuse is exact.
        return _groups_without_cache(model, groups, len(groups))

    # The prompts run right-padded without a mask, as in _answer_batch. The logits of each
    # prompt's last token predict its first answer token; only those columns are computed.
    prompt_lengths = torch.tensor([len(prompt) for prompt, _ in groups], device=device)
    prompt_ids, prompt_mask = pad_right([prompt for prompt, _ in groups], device)
    rows = torch.arange(len(groups), device=device)
    if _keeps_logits(model) and type(model).__module__.startswith("transformers."):
        # transformers' own models accept a tensor of column indices.
        columns, column_of_row = torch.unique(prompt_lengths - 1, return_inverse=True)
        output = model(input_ids=prompt_ids, use_cache=True, logits_to_keep=columns)
        last_logits = output.logits[rows, column_of_row]
    elif _keeps_logits(model):
        # Other code may take only a count of trailing columns: keep all from the shortest prompt's end.
        first = int(prompt_lengths.min()) - 1
        output = model(input_ids=prompt_ids, use_cache=True, logits_to_keep=prompt_ids.shape[1] - first)
        last_logits = output.logits[rows, prompt_lengths - 1 - first]
    else:
        output = model(input_ids=prompt_ids, use_cache=True)
        last_logits = output.logits[rows, prompt_lengths - 1]
    cache = getattr(output, "cache", None) or getattr(output, "past_key_values", None)
    del output
    if not hasattr(cache, "batch_select_indices"):
        # NOTE: a cache that cannot be re-indexed by batch row loses the reuse for this batch.
        return _groups_without_cache(model, groups, len(groups))

    # One row per answer: row r continues the prompt of group owner[r]. The padding that
    # follows a shorter prompt in the cache is masked out of the answer pass.
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
    first = _label_logps(last_logits, answer_ids[:, 0])
    has_first = answer_mask[:, 0]
    sums, counts = sums + first * has_first, counts + has_first
    return [_answer_logp(total, count) for total, count in zip(sums.tolist(), counts.tolist())]


def _keeps_logits(model: Any) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


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


def _answer_logp(total: float, count: int) -> AnswerLogp:
    return AnswerLogp(sum=total, mean=total / count if count else float("nan"), count=int(count))


def model_device(model: Any) -> torch.device:
    return next(model.parameters()).device
