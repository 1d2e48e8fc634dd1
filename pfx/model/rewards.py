"""Reward-model scores of whole sequences, batched.

A sequence-classification model scores a sequence by its output at the last
token. transformers finds that token as the rightmost one that is not the pad
id, which is wrong when the pad id is also the EOS id that ends every answer
(GPT-2 style tokenizers). So the per-position head output is captured with a
forward hook and read at each sequence's real last position.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from pfx.model.logps import model_device, pad_right

HEAD_NAMES = ("score", "classifier")


def reward_scores(model: Any, sequences: Sequence[list[int]], batch_size: int) -> list[float]:
    """Return the reward of each token-id sequence in input order, without gradients."""
    head = _find_head(model)
    if head is None:
        # NOTE: without a known head module the model pools by itself, one unpadded sequence at a time.
        return [_score_one(model, sequence) for sequence in sequences]

    results: list[float] = [0.0] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
    device = model_device(model)
    captured: dict[str, torch.Tensor] = {}
    hook = head.register_forward_hook(lambda module, inputs, output: captured.__setitem__("logits", output))
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                indices = order[start:start + batch_size]
                input_ids, attention_mask = pad_right([sequences[i] for i in indices], device)
                model(input_ids=input_ids, attention_mask=attention_mask)
                last = attention_mask.sum(-1) - 1
                per_position = captured["logits"]
                values = per_position[torch.arange(len(indices), device=device), last, 0].float().tolist()
                for index, value in zip(indices, values):
                    results[index] = value
    finally:
        hook.remove()
    return results


def _find_head(model: Any) -> torch.nn.Module | None:
    for module_name, module in model.named_modules():
        if module_name.split(".")[-1] in HEAD_NAMES and isinstance(module, torch.nn.Linear):
            return module
    return None


def _score_one(model: Any, sequence: list[int]) -> float:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([sequence], device=model_device(model))).logits
    return float(logits[0, 0])
