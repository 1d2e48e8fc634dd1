"""The supervised term that ``--sft-weight`` adds to any loss: NLL of the preferred answer."""

from __future__ import annotations

import torch


def sft(logps: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Return the per-example NLL per answer token, -logp(y)/|y|, of the preferred answers.

    The caller multiplies it by ``sft_weight`` and adds it to the preference
    loss (RPO, "Iterative Reasoning Preference Optimization", arXiv 2404.19733,
    adds the same term). TRL's ``loss_type=[..., "sft"]`` averages over all
    chosen tokens of the batch instead of per example. Shapes (N,) -> (N,).
    """
    return -logps / counts
