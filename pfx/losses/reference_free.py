"""Reference-free pairwise losses: SimPO and ORPO use average log-probs of the policy alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pfx.losses.base import LossOutput, LossSettings, PairBatch


def simpo(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """SimPO: a margin on length-normalised policy log-probs, no reference model.

    "SimPO: Simple Preference Optimization with a Reference-Free Reward",
    arXiv 2405.14734.  loss = -log sigmoid(beta*logp(y_w)/|y_w| - beta*logp(y_l)/|y_l| - gamma).
    Reads ``beta`` (the authors use 2-10) and ``gamma`` (absolute margin, 0.5-3;
    TRL's ``simpo_gamma`` is the same quantity). Rewards are beta * average
    log-prob. Shapes (B,) -> (B,).
    """
    chosen = settings.beta * batch.chosen_logps / batch.chosen_counts
    rejected = settings.beta * batch.rejected_logps / batch.rejected_counts
    losses = -F.logsigmoid(chosen - rejected - settings.gamma)
    return LossOutput(losses, chosen.detach(), rejected.detach())


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """Return log(1 - exp(x)) for x < 0, switching formulas at -log 2 to stay accurate at both ends."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def orpo(batch: PairBatch, settings: LossSettings) -> LossOutput:
    """ORPO: chosen NLL plus an odds-ratio penalty, no reference model.

    "ORPO: Monolithic Preference Optimization without Reference Model",
    arXiv 2403.07691.  loss = NLL_avg(y_w) - lambda * log sigmoid(log odds(y_w) - log odds(y_l)),
    odds(y) = p / (1 - p) with p = exp(average log-prob). Reads ``beta`` as lambda
    (default 0.1, as in TRL; 0.05-0.5 is typical). Rewards are beta * average
    log-prob. Shapes (B,) -> (B,).
    """
    chosen = batch.chosen_logps / batch.chosen_counts
    rejected = batch.rejected_logps / batch.rejected_counts
    log_odds = (chosen - rejected) - (_log1mexp(chosen) - _log1mexp(rejected))
    losses = -chosen - settings.beta * F.logsigmoid(log_odds)
    return LossOutput(losses, settings.beta * chosen.detach(), settings.beta * rejected.detach())
