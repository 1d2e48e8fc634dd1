"""Atomic training checkpoints under OUTDIR/checkpoints, and resuming from the latest one.

A checkpoint directory is written under a temporary name, every file is
fsynced, and the directory is renamed to ``step-NNNNNNNN`` and its parent
fsynced. A process killed during a save leaves a temporary directory, which
``latest_checkpoint`` ignores, and the previous checkpoint whole. Only after
the rename are older checkpoints removed.

Contents: the trainable parameters (``trainable.safetensors``; all weights for
full fine-tuning, the adapter weights with LoRA), optimizer and scheduler
state, each process's RNG state and ``state.json`` (step, epoch, loss state).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

import torch

from pfx.train.reference import fsync_directory

CHECKPOINTS = "checkpoints"
PATTERN = re.compile(r"^step-(\d{8})$")


def checkpoint_root(outdir: str) -> str:
    return os.path.join(outdir, CHECKPOINTS)


def latest_checkpoint(outdir: str) -> str | None:
    """Return the path of the newest complete checkpoint in OUTDIR, or None."""
    root = checkpoint_root(outdir)
    if not os.path.isdir(root):
        return None
    steps = sorted(name for name in os.listdir(root) if PATTERN.match(name))
    return os.path.join(root, steps[-1]) if steps else None


def _write_fsynced(path: str, write: Any) -> None:
    write(path)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().cpu().contiguous() for name, parameter in model.named_parameters()
            if parameter.requires_grad}


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(outdir: str, step: int, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any],
                    rank: int = 0, world_size: int = 1, keep: int = 1) -> str | None:
    """Write a checkpoint for ``step`` atomically and remove older ones; return its path on rank 0.

    Every process must call it, because it synchronises under
    torch.distributed. Rank 0 writes the shared files, every process its own
    RNG state.
    """
    # NOTE: under FSDP or DeepSpeed, rank 0's parameters and optimizer state are
    # shards, so these checkpoints would be incomplete; only DDP has been run.
    from safetensors.torch import save_file

    root = checkpoint_root(outdir)
    final = os.path.join(root, f"step-{step:08d}")
    temporary = os.path.join(root, f".tmp-step-{step:08d}")
    distributed = world_size > 1
    if rank == 0:
        os.makedirs(root, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        os.makedirs(temporary)
    if distributed:
        torch.distributed.barrier()
    _write_fsynced(os.path.join(temporary, f"rng-{rank}.pt"), lambda path: torch.save(rng_state(), path))
    if distributed:
        torch.distributed.barrier()
    if rank == 0:
        _write_fsynced(os.path.join(temporary, "trainable.safetensors"),
                       lambda path: save_file(trainable_state(model), path))
        _write_fsynced(os.path.join(temporary, "optimizer.pt"), lambda path: torch.save(optimizer.state_dict(), path))
        _write_fsynced(os.path.join(temporary, "scheduler.pt"), lambda path: torch.save(scheduler.state_dict(), path))
        _write_fsynced(os.path.join(temporary, "state.json"), lambda path: _write_json(path, state))
        fsync_directory(temporary)
        os.replace(temporary, final)
        fsync_directory(root)
        for name in sorted(n for n in os.listdir(root) if PATTERN.match(n))[:-keep]:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    if distributed:
        torch.distributed.barrier()
    return final if rank == 0 else None


def load_checkpoint(path: str, model: Any, optimizer: Any, scheduler: Any, rank: int = 0) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and this process's RNG from ``path``; return ``state.json``."""
    from safetensors.torch import load_file

    weights = load_file(os.path.join(path, "trainable.safetensors"))
    parameters = dict(model.named_parameters())
    missing = sorted(set(name for name, p in parameters.items() if p.requires_grad) - set(weights))
    if missing:
        raise ValueError(f"checkpoint {path} lacks trainable parameters {', '.join(missing[:3])}")
    with torch.no_grad():
        for name, tensor in weights.items():
            parameters[name].copy_(tensor)
    optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), weights_only=True))
    scheduler.load_state_dict(torch.load(os.path.join(path, "scheduler.pt"), weights_only=True))
    rng_path = os.path.join(path, f"rng-{rank}.pt")
    if os.path.exists(rng_path):
        rng = torch.load(rng_path, weights_only=True)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
    with open(os.path.join(path, "state.json"), encoding="utf-8") as handle:
        return json.load(handle)
