"""Losses for unpaired records (one completion with a desirable/undesirable label): KTO and BCO."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pfx.losses.base import LossOutput, LossSettings, LossState, UnpairedBatch, global_mean


def _logratios(batch: UnpairedBatch) -> torch.Tensor:
    if batch.ref_logps is None:
        raise ValueError("this loss needs reference log-probs, but the batch has none")
    return batch.logps - batch.ref_logps


def kl_estimate(batch: UnpairedBatch) -> torch.Tensor:
    """Return KTO's z0 = max(0, mean rho(x_i, y'_i)) over mismatched pairs, detached.

    The mean runs over every process under torch.distributed, as in TRL's
    KTOTrainer; the mismatched completions y'_i come from other records.
    """
    if batch.kl_logps is None or batch.ref_kl_logps is None:
        raise ValueError("kto needs log-probs of mismatched (prompt, completion) pairs, but the batch has none")
    return global_mean(batch.kl_logps.detach() - batch.ref_kl_logps).clamp(min=0)


def kto(batch: UnpairedBatch, settings: LossSettings) -> LossOutput:
    """KTO: a prospect-theory value of each completion's reward against a KL reference point.

    "KTO: Model Alignment as Prospect Theoretic Optimization", arXiv 2402.01306.
    desirable: lambda_D * (1 - sigmoid(beta*(rho - z0))); undesirable:
    lambda_U * (1 - sigmoid(beta*(z0 - rho))); z0 from ``kl_estimate``. Reads
    ``beta`` (0.1), ``desirable_weight`` and ``undesirable_weight`` (1.0 each;
    the paper advises lambda_D*n_D / (lambda_U*n_U) in [1, 4/3]). Returns the
    losses in input order (B,); ``chosen_rewards`` are beta*rho of the
    desirable examples, ``rejected_rewards`` of the undesirable ones.
    """
    logratios = _logratios(batch)
    z0 = kl_estimate(batch)
    labels = batch.labels.bool()
    desirable = settings.desirable_weight * (1 - torch.sigmoid(settings.beta * (logratios - z0)))
    undesirable = settings.undesirable_weight * (1 - torch.sigmoid(settings.beta * (z0 - logratios)))
    losses = torch.where(labels, desirable, undesirable)
    rewards = settings.beta * logratios.detach()
    return LossOutput(losses, rewards[labels], rewards[~labels])


def bco(batch: UnpairedBatch, settings: LossSettings, state: LossState) -> LossOutput:
    """BCO: a binary classifier on the implicit reward, shifted by the running mean reward delta.

    "Binary Classifier Optimization for Large Language Model Alignment",
    arXiv 2404.04656.  desirable: -log sigmoid(r - delta); undesirable:
    -w(x) * log sigmoid(-(r - delta)), with r = beta*rho. delta is the cumulative
    mean of all rewards seen, over every process, updated with this batch
    before use and kept in ``state.reward_shift`` (saved in checkpoints), as
    in TRL's BCOTrainer. w(x) is ``batch.weights`` (1 when None): the prompt
    density ratio of underlying distribution matching (``pfx.train.udm``).
    Reads ``beta`` (0.1). Shapes (B,) -> (B,).
    """
    rewards = settings.beta * _logratios(batch)
    state.reward_shift.update(rewards)
    delta = state.reward_shift.mean
    labels = batch.labels.bool()
    weights = batch.weights if batch.weights is not None else torch.ones_like(rewards)
    losses = torch.where(labels, -F.logsigmoid(rewards - delta), -weights * F.logsigmoid(-(rewards - delta)))
    detached = rewards.detach()
    return LossOutput(losses, detached[labels], detached[~labels])
