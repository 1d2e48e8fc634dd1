"""Inputs, settings and state shared by every loss in ``pfx.losses``.

A loss reads sequence log-probs (sums over answer tokens, prompt and padding
masked out) and returns per-example losses plus detached implicit rewards, and the
training loop reduces them. Log-ratios are ``rho(y) = log pi(y|x) - log pi_ref(y|x)``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class PairBatch:
    """Log-probs of B preference pairs; every tensor has shape (B,)."""

    chosen_logps: torch.Tensor  # policy, summed over chosen answer tokens
    rejected_logps: torch.Tensor
    chosen_counts: torch.Tensor  # answer tokens per sequence, >= 1
    rejected_counts: torch.Tensor
    ref_chosen_logps: torch.Tensor | None = None
    ref_rejected_logps: torch.Tensor | None = None
    smoothing: torch.Tensor | None = None  # per-pair label smoothing (1 - confidence)

    def logratios(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (rho(chosen), rho(rejected)); raise when the batch has no reference log-probs."""
        if self.ref_chosen_logps is None or self.ref_rejected_logps is None:
            raise ValueError("this loss needs reference log-probs, but the batch has none")
        return self.chosen_logps - self.ref_chosen_logps, self.rejected_logps - self.ref_rejected_logps


@dataclass
class UnpairedBatch:
    """Log-probs of B unpaired examples (label True = desirable); tensors of shape (B,).

    ``kl_logps``/``ref_kl_logps`` score each prompt with another example's
    completion (a mismatched pair); KTO estimates its KL term from them.
    """

    logps: torch.Tensor
    counts: torch.Tensor
    labels: torch.Tensor  # bool
    ref_logps: torch.Tensor | None = None
    kl_logps: torch.Tensor | None = None
    ref_kl_logps: torch.Tensor | None = None
    weights: torch.Tensor | None = None  # BCO density ratio of undesirable prompts; None means 1


@dataclass
class ListBatch:
    """Log-probs of B ranked lists padded to K completions; tensors of shape (B, K).

    ``scores`` are higher-is-better labels (a ``ranks`` field is turned into
    ``-rank`` before this point); ``mask`` is False at padding slots.
    """

    logps: torch.Tensor
    counts: torch.Tensor
    scores: torch.Tensor
    mask: torch.Tensor
    ref_logps: torch.Tensor | None = None


@dataclass
class LossOutput:
    """Per-example losses (N,) and detached rewards of the preferred and dispreferred answers."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


@dataclass
class LossSettings:
    """Hyperparameters; each loss reads the fields its docstring names."""

    beta: float = 0.1
    smoothing: float = 0.0  # label smoothing (cdpo) or flip rate (rdpo), epsilon
    gamma: float = 1.6  # SimPO target margin, in units of average log-prob times beta
    desirable_weight: float = 1.0  # KTO lambda_D
    undesirable_weight: float = 1.0  # KTO lambda_U
    sft_weight: float = 0.0
    noise_alpha: float = 0.1  # noise-aware smoothing strength
    noise_quantile: float = 0.1  # noise-aware confidence threshold, as a quantile of recent margins
    noise_warmup: float = 0.2  # fraction of training before noise-aware smoothing starts


@dataclass
class RunningMean:
    """A cumulative, count-weighted mean of every value seen (BCO's reward shift delta)."""

    total: float = 0.0
    count: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def update(self, values: torch.Tensor) -> None:
        """Add values; under torch.distributed the sums of every process are added."""
        stats = torch.tensor([float(values.detach().sum()), float(values.numel())], dtype=torch.float64)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            backend_device = values.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
            stats = stats.to(backend_device)
            torch.distributed.all_reduce(stats)
        self.total += float(stats[0])
        self.count += int(stats[1])


@dataclass
class LossState:
    """Loss state that must survive a resume: BCO's delta, the noise-aware margin history, progress."""

    reward_shift: RunningMean = field(default_factory=RunningMean)
    margin_history: deque = field(default_factory=lambda: deque(maxlen=50))
    progress: float = 0.0  # fraction of training done, in [0, 1]; set by the loop each step

    def state_dict(self) -> dict[str, Any]:
        return {
            "reward_shift": {"total": self.reward_shift.total, "count": self.reward_shift.count},
            "margin_history": list(self.margin_history),
            "progress": self.progress,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reward_shift = RunningMean(**state["reward_shift"])
        self.margin_history = deque(state["margin_history"], maxlen=50)
        self.progress = state["progress"]


def global_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over every process under torch.distributed, else over this one."""
    stats = torch.stack([values.detach().sum(), values.new_tensor(float(values.numel()))])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(stats)
    if stats[1] == 0:
        return torch.zeros((), device=values.device)
    return stats[0] / stats[1]

