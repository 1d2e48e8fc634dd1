"""The registry of DPO-family losses: the one list that feeds ``--loss``, its help and its errors.

Each entry names the record kind it trains on, whether it needs reference
log-probs, and the function that computes it. Adding a loss means writing the
function in a module of this package and one ``Loss(...)`` line below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

RecordKind = Literal["pair", "unpaired", "list"]


@dataclass(frozen=True)
class Loss:
    """One registered loss."""

    name: str
    kind: RecordKind
    function: str  # "module:function" inside pfx.losses, imported on first use (torch stays lazy)
    summary: str
    reference: bool = True  # needs reference log-probs
    stateful: bool = False  # takes a LossState (saved in checkpoints)
    smoothing: bool = False  # reads per-pair label smoothing (--smoothing, --confidence-as-smoothing)
    own_sft: bool = False  # includes its own SFT term, weighted by --sft-weight
    defaults: dict[str, float] = field(default_factory=dict)  # settings that differ from LossSettings' defaults

    def load(self) -> Callable[..., Any]:
        """Import and return the loss function."""
        import importlib

        module, name = self.function.split(":")
        return getattr(importlib.import_module(f"pfx.losses.{module}"), name)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("dpo", "pair", "dpo:dpo", "sigmoid DPO"),
        Loss("cdpo", "pair", "dpo:cdpo", "conservative DPO, label smoothing --smoothing", smoothing=True),
        Loss("rdpo", "pair", "dpo:rdpo", "robust DPO for a known label flip rate --smoothing", smoothing=True),
        Loss("ipo", "pair", "dpo:ipo", "IPO on token-averaged log-ratios"),
        Loss("hinge", "pair", "dpo:hinge", "hinge on the DPO margin (SLiC/RSO)"),
        Loss("ln-dpo", "pair", "dpo:ln_dpo", "length-normalised DPO", defaults={"beta": 2.0}),
        Loss("bco-pair", "pair", "dpo:bco_pair", "paired binary classifier (BCO without delta)"),
        Loss("noise-aware", "pair", "noise_aware:noise_aware", "DPO smoothed on low-margin pairs (self-labeling)",
             stateful=True),
        Loss("simpo", "pair", "reference_free:simpo", "reference-free, length-normalised margin gamma",
             reference=False, defaults={"beta": 2.0}),
        Loss("orpo", "pair", "reference_free:orpo", "reference-free NLL plus odds ratio", reference=False),
        Loss("kto", "unpaired", "unpaired:kto", "KTO on desirable/undesirable labels"),
        Loss("bco", "unpaired", "unpaired:bco", "BCO with the running-mean reward shift delta", stateful=True),
        Loss("lipo", "list", "listwise:lipo", "LiPO-lambda listwise ranking"),
        Loss("pro", "list", "listwise:pro", "Preference Ranking Optimization, reference-free", reference=False,
             own_sft=True, defaults={"sft_weight": 0.05}),
    )
}


def get_loss(name: str) -> Loss:
    """Return the registered loss ``name``; raise KeyError naming the valid choices."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return LOSSES[name]


def loss_help() -> str:
    """Return one line per loss for ``pfx train-dpo --help``: name, record kind, summary."""
    return "\n".join(f"{loss.name:<12} {loss.kind:<9} {loss.summary}" for loss in LOSSES.values())
