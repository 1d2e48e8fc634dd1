"""DPO and the losses that share its pairwise log-ratio margin h = rho(chosen) - rho(rejected).

Every function takes a ``PairBatch`` with reference log-probs and the
``LossSettings``, and returns per-pair losses with the implicit rewards
``beta * rho`` of both answers (detached). Sums are over answer tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pfx.losses.base import LossOutput, LossSettings, PairBatch


def _rewards(batch: PairBatch, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    chosen, rejected = batch.logratios()
    return chosen - rejected, beta * chosen.detach(), beta * rejected.detach()


def dpo(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """Sigmoid DPO loss.

    "Direct Preference Optimization: Your Language Model is Secretly a Reward
    Model", arXiv 2305.18290.  loss = -log sigmoid(beta * h).
    Reads ``beta`` (default 0.1; 0.01-0.5 is typical). Shapes (B,) -> (B,).
    """
    margin, chosen_rewards, rejected_rewards = _rewards(batch, settings.beta)
    return LossOutput(-F.logsigmoid(settings.beta * margin), chosen_rewards, rejected_rewards)


def _smoothing(batch: PairBatch, settings: LossSettings) -> torch.Tensor | float:
    return batch.smoothing if batch.smoothing is not None else settings.smoothing


def cdpo(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """Conservative DPO: DPO with label smoothing epsilon.

    E. Mitchell, "A note on DPO with noisy preferences & relationship to IPO"
    (2023).  loss = -(1 - eps) * log sigmoid(beta*h) - eps * log sigmoid(-beta*h);
    its optimum is beta*h = log((1 - eps) / eps). Reads ``beta`` and
    ``smoothing`` (eps in [0, 0.5), default 0.0, 0.1-0.3 is typical), or the
    per-pair ``batch.smoothing`` (1 - confidence) when set. Shapes (B,) -> (B,).
    """
    margin, chosen_rewards, rejected_rewards = _rewards(batch, settings.beta)
    eps = _smoothing(batch, settings)
    losses = -(1 - eps) * F.logsigmoid(settings.beta * margin) - eps * F.logsigmoid(-settings.beta * margin)
    return LossOutput(losses, chosen_rewards, rejected_rewards)


def rdpo(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """Robust DPO for labels flipped at a known rate epsilon.

    "Provably Robust DPO: Aligning Language Models with Noisy Feedback",
    arXiv 2403.00409.  loss = [-(1 - eps) * log sigmoid(beta*h) + eps * log sigmoid(-beta*h)] / (1 - 2*eps).
    An unbiased estimate of the clean DPO loss; it is unbounded below, so its
    values can be negative. Reads ``beta`` and ``smoothing`` (eps in [0, 0.5),
    0.1 is typical) or ``batch.smoothing``. Shapes (B,) -> (B,).
    """
    margin, chosen_rewards, rejected_rewards = _rewards(batch, settings.beta)
    eps = _smoothing(batch, settings)
    clean = -(1 - eps) * F.logsigmoid(settings.beta * margin)
    flipped = -eps * F.logsigmoid(-settings.beta * margin)
    return LossOutput((clean - flipped) / (1 - 2 * eps), chosen_rewards, rejected_rewards)


def ipo(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """IPO: squared distance of the token-averaged margin from 1 / (2 tau).

    "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", arXiv 2310.12036, Eq. 17.  loss = (h_avg - 1/(2*beta))^2 with
    h_avg = rho(y_w)/|y_w| - rho(y_l)/|y_l|. Averaging per token follows TRL's
    ``loss_type="ipo"``, whose code comment states that the IPO authors confirmed it.
    Reads ``beta`` (tau, default 0.1; 0.01-1 is typical). Shapes (B,) -> (B,).
    """
    chosen, rejected = batch.logratios()
    margin = chosen / batch.chosen_counts - rejected / batch.rejected_counts
    losses = (margin - 1 / (2 * settings.beta)) ** 2
    return LossOutput(losses, settings.beta * chosen.detach(), settings.beta * rejected.detach())


def hinge(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """Hinge loss on the DPO margin (SLiC-HF / RSO).

    "Statistical Rejection Sampling Improves Preference Optimization",
    arXiv 2309.06657.  loss = max(0, 1 - beta * h). Reads ``beta`` (1/beta is
    the margin in log-ratio units; 0.1-1 is typical). Shapes (B,) -> (B,).
    """
    margin, chosen_rewards, rejected_rewards = _rewards(batch, settings.beta)
    return LossOutput(torch.relu(1 - settings.beta * margin), chosen_rewards, rejected_rewards)


def ln_dpo(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """Length-normalised DPO: DPO on per-token log-ratios, reference kept.

    "The Hitchhiker's Guide to Human Alignment with *PO", arXiv 2407.15229.
    loss = -log sigmoid(beta * (rho(y_w)/|y_w| - rho(y_l)/|y_l|)); the same as
    TRL's ``loss_type="sigmoid_norm"``. Per-token log-ratios are about |y| times
    smaller than sums, so beta must be much larger than for DPO (1-10).
    Shapes (B,) -> (B,).
    """
    chosen, rejected = batch.logratios()
    margin = chosen / batch.chosen_counts - rejected / batch.rejected_counts
    losses = -F.logsigmoid(settings.beta * margin)
    return LossOutput(losses, settings.beta * chosen.detach(), settings.beta * rejected.detach())


def bco_pair(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """Paired BCO: each answer of a pair classified on its own implicit reward.

    "Binary Classifier Optimization for Large Language Model Alignment",
    arXiv 2404.04656.  loss = -log sigmoid(beta*rho(y_w)) - log sigmoid(-beta*rho(y_l)).
    Without the reward shift delta, as in TRL >= 0.29 ``loss_type="bco_pair"``;
    the unpaired ``bco`` loss keeps delta. Reads ``beta`` (default 0.1).
    Shapes (B,) -> (B,).
    """
    chosen, rejected = batch.logratios()
    chosen_rewards, rejected_rewards = settings.beta * chosen, settings.beta * rejected
    losses = -F.logsigmoid(chosen_rewards) - F.logsigmoid(-rejected_rewards)
    return LossOutput(losses, chosen_rewards.detach(), rejected_rewards.detach())
