"""The noise-aware DPO loss of self-labeling: label smoothing only on low-margin pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pfx.losses.base import LossOutput, LossSettings, LossState, PairBatch, global_mean


def margin_threshold(history: list[float], quantile: float) -> float:
    """Return the confidence threshold tau from recent per-step mean margins.

    The mean of the two sorted values at index round(q * n) and the next one:
    with 50 values and q = 0.1 that is (m[5] + m[6]) / 2, as in the authors'
    code (kingdy2002/SPA). Returns -inf until 50 values exist, so that every
    pair counts as confident and the loss is plain DPO until then.
    """
    # NOTE: the authors' behaviour before 50 margins exist was not checked; -inf is our choice.
    if len(history) < 50:
        return float("-inf")
    ordered = sorted(history)
    index = min(round(quantile * len(ordered)), len(ordered) - 2)
    return (ordered[index] + ordered[index + 1]) / 2


def noise_aware(batch: PairBatch, settings: LossSettings, state: LossState) -> LossOutput:
    """Noise-aware DPO: cDPO smoothing alpha on pairs whose margin is below a running threshold.

    "Aligning Large Language Models with Self-generated Preference Data"
    (Spread Preference Annotation), arXiv 2406.04412.
    loss = -(1 - a + a*c) * log sigmoid(beta*h) - (a - a*c) * log sigmoid(-beta*h),
    c = 1[beta*h > tau] (detached), a = 0 during the first ``noise_warmup``
    fraction of training, else ``noise_alpha`` (default 0.1). tau is the
    ``noise_quantile`` (default 0.1) of the last 50 per-step mean margins,
    kept in ``state.margin_history`` and updated after each call (each
    micro-batch) with the mean over every process, so all processes keep the
    same history.
    Shapes (B,) -> (B,).
    """
    chosen, rejected = batch.logratios()
    margin = settings.beta * (chosen - rejected)
    tau = margin_threshold(list(state.margin_history), settings.noise_quantile)
    confident = (margin.detach() > tau).to(margin.dtype)
    alpha = 0.0 if state.progress < settings.noise_warmup else settings.noise_alpha
    losses = -(1 - alpha + alpha * confident) * F.logsigmoid(margin) - (alpha - alpha * confident) * F.logsigmoid(-margin)
    state.margin_history.append(float(global_mean(margin)))
    return LossOutput(losses, settings.beta * chosen.detach(), settings.beta * rejected.detach())
