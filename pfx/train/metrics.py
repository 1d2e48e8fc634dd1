"""Training metrics: accumulated over the steps between two log lines, written as JSON lines.

Names follow TRL's DPOTrainer (``rewards/chosen``, ``rewards/margins``,
``logps/chosen``, ...) so existing dashboards read them. ``rewards/accuracies``
counts pairs whose chosen reward is higher by more than ``TIE_TOLERANCE``;
pairs within it are counted in ``rewards/ties`` instead of as failures.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

import orjson
import torch

# Rewards of the same answer computed in different batch layouts differ by
# float rounding (about 1e-6 in float32), so smaller differences are ties.
TIE_TOLERANCE = 1e-5

_SUMS = ("loss", "examples", "chosen_rewards", "chosen_count", "rejected_rewards", "rejected_count",
         "chosen_logps", "rejected_logps", "margins", "compared", "wins", "ties", "tokens")


class MetricsAccumulator:
    """Sums of per-example values since the last log line; reduced across processes when logged."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(_SUMS, 0.0)
        self.started = time.monotonic()

    def add(self, losses: torch.Tensor, chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
            chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, paired: bool, tokens: int) -> None:
        """Add one micro-batch. With ``paired``, chosen and rejected rewards line up one to one."""
        sums = self.sums
        sums["loss"] += float(losses.detach().sum())
        sums["examples"] += losses.numel()
        sums["chosen_rewards"] += float(chosen_rewards.sum())
        sums["chosen_count"] += chosen_rewards.numel()
        sums["rejected_rewards"] += float(rejected_rewards.sum())
        sums["rejected_count"] += rejected_rewards.numel()
        sums["chosen_logps"] += float(chosen_logps.detach().sum())
        sums["rejected_logps"] += float(rejected_logps.detach().sum())
        sums["tokens"] += tokens
        if paired:
            margins = chosen_rewards - rejected_rewards
            sums["margins"] += float(margins.sum())
            sums["compared"] += margins.numel()
            sums["wins"] += float((margins > TIE_TOLERANCE).sum())
            sums["ties"] += float((margins.abs() <= TIE_TOLERANCE).sum())

    def reduce(self, world_size: int, device: torch.device) -> dict[str, float]:
        values = torch.tensor([self.sums[name] for name in _SUMS], dtype=torch.float64)
        if world_size > 1:
            values = values.to(device)
            torch.distributed.all_reduce(values)
        return dict(zip(_SUMS, values.cpu().tolist()))

    def line(self, step: int, epoch: float, learning_rate: float, grad_norm: float, world_size: int,
             device: torch.device) -> dict[str, Any]:
        """Return the metrics record for ``step`` and start a new interval."""
        sums = self.reduce(world_size, device)
        elapsed = max(time.monotonic() - self.started, 1e-9)

        def mean(total: str, count: str) -> float | None:
            return sums[total] / sums[count] if sums[count] else None

        chosen, rejected = mean("chosen_rewards", "chosen_count"), mean("rejected_rewards", "rejected_count")
        record: dict[str, Any] = {
            "step": step,
            "epoch": round(epoch, 4),
            "loss": mean("loss", "examples"),
            "rewards/chosen": chosen,
            "rewards/rejected": rejected,
            "rewards/margins": mean("margins", "compared") if sums["compared"] else (
                chosen - rejected if chosen is not None and rejected is not None else None),
            "rewards/accuracies": mean("wins", "compared"),
            "rewards/ties": mean("ties", "compared"),
            "logps/chosen": mean("chosen_logps", "chosen_count"),
            "logps/rejected": mean("rejected_logps", "rejected_count"),
            "learning_rate": learning_rate,
            "grad_norm": grad_norm if math.isfinite(grad_norm) else None,
            "tokens_per_second": round(sums["tokens"] / elapsed, 1),
            "examples": int(sums["examples"]),
        }
        self.__init__()
        return record


class MetricsWriter:
    """Write metrics records as JSON lines to stdout or a file, flushed per line."""

    def __init__(self, path: str | None) -> None:
        self.handle: IO[bytes] = open(path, "ab") if path and path != "-" else sys.stdout.buffer
        self.owned = self.handle is not sys.stdout.buffer

    def write(self, record: dict[str, Any]) -> None:
        self.handle.write(orjson.dumps(record) + b"\n")
        self.handle.flush()

    def close(self) -> None:
        if self.owned:
            self.handle.close()
