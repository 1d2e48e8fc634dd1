"""Reference log-probs: computed once before training and cached on disk.

The cache key covers the reference weights, every sequence's token ids (so
the data and the tokenization settings) and the dtype. A rerun with the same
key loads the file instead of running the reference model, and the
reference model is not kept in memory during training.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterable

import torch

from pfx.train.data import Example, Sequence
from pfx.train.forward import make_batch, sequence_logps


def flatten(examples: Iterable[Example]) -> list[Sequence]:
    """Return all sequences of all examples in order, the order in which the cache stores them."""
    return [sequence for example in examples for sequence in example.sequences]


def weights_fingerprint(model: Any) -> str:
    """Return a hash of the model's parameter names and values, skipping LoRA adapter weights."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name:
            continue
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def data_fingerprint(sequences: Iterable[Sequence]) -> str:
    """Return a hash of every sequence's prompt and answer token ids."""
    digest = hashlib.blake2b(digest_size=16)
    for sequence in sequences:
        digest.update(repr((sequence.prompt_ids, sequence.answer_ids)).encode())
    return digest.hexdigest()


def cache_key(weights: str, data: str, dtype: torch.dtype, layout: str) -> str:
    return hashlib.blake2b(f"{weights}:{data}:{dtype}:{layout}".encode(), digest_size=16).hexdigest()


def compute_logps(model: Any, examples: list[Example], batch_size: int, pad_id: int, layout: str,
                  rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sums, counts) of answer log-probs of every sequence (in ``flatten`` order), without gradients.

    Examples are sorted by length and batched ``batch_size`` at a time. Under
    torch.distributed each process computes every world_size-th batch and the
    results are summed across processes, so every process returns the full tensors.
    """
    starts = [0]
    for example in examples:
        starts.append(starts[-1] + len(example.sequences))
    order = sorted(range(len(examples)), key=lambda index: -examples[index].tokens)
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    sums = torch.zeros(starts[-1], dtype=torch.float32)
    counts = torch.zeros(starts[-1], dtype=torch.long)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in batches[rank::world_size]:
            batch_sums, batch_counts = sequence_logps(model, make_batch([examples[i].unit for i in batch], pad_id, layout))
            positions = [position for i in batch for position in range(starts[i], starts[i + 1])]
            sums[positions] = batch_sums.float().cpu()
            counts[positions] = batch_counts.cpu()
    model.train(was_training)
    if world_size > 1:
        # Each index is filled by exactly one process, so a sum gathers them.
        device = next(model.parameters()).device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
        sums, counts = sums.to(device), counts.to(device)
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(counts)
        sums, counts = sums.cpu(), counts.cpu()
    return sums, counts


def load_cached(path: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Return the cached (sums, counts) at ``path``, or None when there is no such file."""
    from safetensors.torch import load_file

    if not os.path.exists(path):
        return None
    tensors = load_file(path)
    return tensors["sums"], tensors["counts"]


def save_cached(path: str, sums: torch.Tensor, counts: torch.Tensor) -> None:
    """Write the cache file atomically: a temporary file in the same directory, fsync, rename."""
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    save_file({"sums": sums.contiguous(), "counts": counts.contiguous()}, temporary)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(os.path.dirname(path) or ".")


def fsync_directory(path: str) -> None:
    """Flush a directory entry (a rename) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/pfx/ref-logps``, or ``~/.cache/pfx/ref-logps``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pfx", "ref-logps")
