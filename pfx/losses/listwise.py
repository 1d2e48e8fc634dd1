"""Losses for ranked lists of completions: LiPO-lambda and PRO.

Both take a ``ListBatch`` of shape (B, K) whose ``mask`` marks the real
completions of each list, and return one loss per list (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pfx.losses.base import ListBatch, LossOutput, LossSettings


def _normalise_labels(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Min-max scale each list's labels to [0, 1], so the gain 2^psi stays small on any score scale."""
    low = scores.masked_fill(~mask, float("inf")).min(dim=1, keepdim=True).values
    high = scores.masked_fill(~mask, float("-inf")).max(dim=1, keepdim=True).values
    span = (high - low).clamp(min=1e-12)
    return ((scores - low) / span).masked_fill(~mask, 0.0)


def _best_and_worst(values: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    best = scores.masked_fill(~mask, float("-inf")).argmax(dim=1, keepdim=True)
    worst = scores.masked_fill(~mask, float("inf")).argmin(dim=1, keepdim=True)
    return values.gather(1, best).squeeze(1), values.gather(1, worst).squeeze(1)


def lipo(batch: ListBatch, settings: LossSettings) -> LossOutput:
    """LiPO-lambda: LambdaLoss with DCG weights on implicit rewards.

    "LiPO: Listwise Preference Optimization through Learning-to-Rank",
    arXiv 2402.01878.  loss = -sum_{i,j: psi_i > psi_j} Delta_ij * log sigmoid(s_i - s_j),
    s = beta*rho, Delta_ij = |G_i - G_j| * |1/D(tau_i) - 1/D(tau_j)|, G = 2^psi - 1,
    D(tau) = log2(1 + tau), tau = rank of s in the list (no gradient).
    Labels psi are each list's scores min-max scaled to [0, 1] (pfx's choice;
    the paper leaves the scale to the user). Ties contribute nothing. Reads
    ``beta`` (default 0.1; the paper reports about 0.05). Shapes (B, K) -> (B,).
    """
    if batch.ref_logps is None:
        raise ValueError("lipo needs reference log-probs, but the batch has none")
    mask = batch.mask.bool()
    rewards = settings.beta * (batch.logps - batch.ref_logps)
    psi = _normalise_labels(batch.scores, mask)
    with torch.no_grad():
        # 1-based rank of each reward within its list, padding last.
        order = rewards.masked_fill(~mask, float("-inf")).argsort(dim=1, descending=True)
        ranks = order.argsort(dim=1).to(rewards.dtype) + 1
        gain = 2**psi - 1
        inverse_discount = 1 / torch.log2(1 + ranks)
        weights = (gain[:, :, None] - gain[:, None, :]).abs() * (inverse_discount[:, :, None] - inverse_discount[:, None, :]).abs()
        better = (psi[:, :, None] > psi[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    pairwise = -F.logsigmoid(rewards[:, :, None] - rewards[:, None, :])
    losses = (weights * pairwise * better).sum(dim=(1, 2))
    chosen, rejected = _best_and_worst(rewards.detach(), batch.scores, mask)
    return LossOutput(losses, chosen, rejected)


def pro(batch: ListBatch, settings: LossSettings) -> LossOutput:
    """PRO: Plackett-Luce over a ranked list with reward-difference temperatures, no reference.

    "Preference Ranking Optimization for Human Alignment", arXiv 2306.17492.
    For completions sorted by score y^1 > ... > y^n with s^k = logp(y^k)/|y^k|:
    loss = sum_{k<n} -log[exp(s^k T_kk) / (exp(s^k T_kk) + sum_{i>k} exp(s^i T_ki))]
           + sft_weight * (n-1)^2 * NLL(y^1),
    T_ki = r^k - r^i, T_kk = max_{i>k} T_ki, NLL a sum over tokens. Scores are
    used as rewards r (normalise them first; equal scores give T = 0). Reads
    ``sft_weight`` (the authors use 0.05). Shapes (B, K) -> (B,).
    """
    mask = batch.mask.bool()
    scores = batch.scores.masked_fill(~mask, float("-inf"))
    order = scores.argsort(dim=1, descending=True)
    logps = batch.logps.gather(1, order)
    counts = batch.counts.gather(1, order)
    rewards = batch.scores.gather(1, order)
    valid = mask.gather(1, order)
    average = logps / counts.clamp(min=1)
    sizes = valid.sum(dim=1)
    losses = torch.zeros(average.shape[0], dtype=average.dtype, device=average.device)
    for k in range(average.shape[1] - 1):
        later = valid.clone()
        later[:, : k + 1] = False
        active = valid[:, k] & later.any(dim=1)
        if not active.any():
            continue
        temperatures = (rewards[:, k : k + 1] - rewards).masked_fill(~later, 0.0)
        top = temperatures.masked_fill(~later, float("-inf")).max(dim=1).values
        # Rows without later completions are masked out below; a finite top keeps their gradient finite.
        top = torch.where(active, top, torch.zeros_like(top))
        own = (average[:, k] * top).unsqueeze(1)
        others = (average * temperatures).masked_fill(~later, float("-inf"))
        logits = torch.cat([own, others], dim=1)
        step = -(own.squeeze(1) - torch.logsumexp(logits, dim=1))
        losses = losses + torch.where(active, step, torch.zeros_like(step))
    nll = -logps[:, 0]
    losses = losses + settings.sft_weight * (sizes - 1).to(average.dtype) ** 2 * nll
    last = (sizes - 1).unsqueeze(1)
    return LossOutput(losses, average[:, 0].detach(), average.detach().gather(1, last).squeeze(1))
