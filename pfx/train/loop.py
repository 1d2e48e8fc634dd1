"""The training loop of ``pfx train-dpo``: forward, loss, backward, step, log, checkpoint.

Data order is a function of (seed, epoch), so a resumed run replays exactly the
batches an uninterrupted run would see. Each optimizer step averages the loss
over all examples of its global batch (every process and every accumulated
micro-batch), so one process with batch 2B and two processes with batch B
compute the same gradient.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from pfx.errors import DataError, RuntimeFailure
from pfx.losses import Loss
from pfx.losses.base import ListBatch, LossOutput, LossSettings, LossState, PairBatch, UnpairedBatch
from pfx.losses.sft import sft
from pfx.train.batching import epoch_batches, shard
from pfx.train.checkpoint import load_checkpoint, save_checkpoint
from pfx.train.data import Example
from pfx.train.forward import make_batch, sequence_logps
from pfx.train.metrics import MetricsAccumulator, MetricsWriter


@dataclass
class LoopOptions:
    """Optimisation settings of one run."""

    epochs: int = 1
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 8  # examples per process and micro-batch
    grad_accum: int = 1
    lr: float = 1e-6
    warmup: float = 0.0  # below 1: fraction of total steps; else a number of steps
    scheduler: str = "linear"  # linear | cosine | constant
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0 turns clipping off
    seed: int = 0
    save_every: int | None = None  # steps between checkpoints
    log_every: int = 1  # steps between metrics lines
    layout: str = "shared-prompt"  # the first of pfx.train.forward.LAYOUTS to try


@dataclass
class Distributed:
    """Rank, world size, device and synchronisation helpers of this process, from accelerate."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backward: Callable[[torch.Tensor], None] = lambda loss: loss.backward()
    no_sync: Callable[[Any], Any] = lambda model: contextlib.nullcontext()
    clip: Callable[[Any, float], torch.Tensor] | None = None


SCHEDULERS = ("linear", "cosine", "constant")


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int) -> Any:
    """Linear warmup to the peak learning rate, then linear or cosine decay to 0, or constant."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if name == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        if name == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return max(1.0 - progress, 0.0)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def global_batches(examples: list[Example], options: LoopOptions, epoch: int, world_size: int) -> list[list[list[int]]]:
    """Return the optimizer steps of one epoch, each a list of global micro-batches of example indices.

    A step takes ``batch_size * world_size * grad_accum`` examples, so the
    same examples form a step however it is split across processes and
    micro-batches. Its micro-batches are as equal in size as possible, and
    each has at least one example per process. A last step with fewer
    examples than processes is dropped (``dropped_tail``).
    """
    lengths = [example.tokens for example in examples]
    micro = options.batch_size * world_size
    steps = []
    for batch in epoch_batches(lengths, micro * options.grad_accum, options.seed, epoch):
        parts = min(math.ceil(len(batch) / micro), len(batch) // world_size)
        if parts == 0:
            continue
        size, extra = divmod(len(batch), parts)
        bounds = [0]
        for part in range(parts):
            bounds.append(bounds[-1] + size + (1 if part < extra else 0))
        steps.append([batch[bounds[part]:bounds[part + 1]] for part in range(parts)])
    return steps


def dropped_tail(examples: list[Example], options: LoopOptions, world_size: int) -> int:
    """Examples per epoch left out by ``global_batches`` (0 on one process)."""
    kept = sum(len(batch) for step in global_batches(examples, options, 0, world_size) for batch in step)
    return len(examples) - kept


def total_steps(examples: list[Example], options: LoopOptions, world_size: int) -> int:
    if options.max_steps:
        return options.max_steps
    return options.epochs * len(global_batches(examples, options, 0, world_size))


# -- one micro-batch: log-probs, then the loss ---------------------------------


def _loss_inputs(loss: Loss, examples: list[Example], sums: torch.Tensor, counts: torch.Tensor,
                 reference: torch.Tensor | None, offsets: list[int]) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Build the loss batch from per-sequence log-probs; return it with the preferred and dispreferred log-probs."""
    device = sums.device
    ref = reference.to(device) if reference is not None else None

    def pick(values: torch.Tensor | None, positions: list[int]) -> torch.Tensor | None:
        return None if values is None else values[torch.tensor(positions, device=device)]

    def take(which: int) -> list[int]:
        return [offset + which for offset in offsets]

    if loss.kind == "pair":
        first, second = take(0), take(1)
        smoothing = None
        if any(example.smoothing is not None for example in examples):
            smoothing = torch.tensor([example.smoothing for example in examples], dtype=sums.dtype, device=device)
        local = list(range(len(examples)))
        batch = PairBatch(
            chosen_logps=sums[[2 * i for i in local]], rejected_logps=sums[[2 * i + 1 for i in local]],
            chosen_counts=counts[[2 * i for i in local]].to(sums.dtype),
            rejected_counts=counts[[2 * i + 1 for i in local]].to(sums.dtype),
            ref_chosen_logps=pick(ref, first), ref_rejected_logps=pick(ref, second), smoothing=smoothing,
        )
        return batch, batch.chosen_logps, batch.rejected_logps

    local_starts = []
    start = 0
    for example in examples:
        local_starts.append(start)
        start += len(example.sequences)

    if loss.kind == "unpaired":
        own = local_starts
        labels = torch.tensor([bool(example.label) for example in examples], device=device)
        has_kl = all(len(example.sequences) > 1 for example in examples)
        weights = None
        if any(example.weight is not None for example in examples):
            weights = torch.tensor([example.weight if example.weight is not None else 1.0 for example in examples],
                                   dtype=sums.dtype, device=device)
        batch = UnpairedBatch(
            logps=sums[own], counts=counts[own].to(sums.dtype), labels=labels, ref_logps=pick(ref, take(0)),
            kl_logps=sums[[s + 1 for s in own]] if has_kl else None,
            ref_kl_logps=pick(ref, take(1)) if has_kl else None, weights=weights,
        )
        return batch, batch.logps[labels], batch.logps[~labels]

    width = max(len(example.sequences) for example in examples)
    shape = (len(examples), width)
    logps = torch.zeros(shape, dtype=sums.dtype, device=device)
    token_counts = torch.ones(shape, dtype=sums.dtype, device=device)
    scores = torch.zeros(shape, dtype=sums.dtype, device=device)
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    ref_logps = torch.zeros(shape, dtype=sums.dtype, device=device) if ref is not None else None
    for row, example in enumerate(examples):
        size = len(example.sequences)
        logps[row, :size] = sums[local_starts[row]:local_starts[row] + size]
        token_counts[row, :size] = counts[local_starts[row]:local_starts[row] + size].to(sums.dtype)
        scores[row, :size] = torch.tensor(example.scores, dtype=sums.dtype)
        mask[row, :size] = True
        if ref_logps is not None:
            ref_logps[row, :size] = ref[offsets[row]:offsets[row] + size]
    batch = ListBatch(logps=logps, counts=token_counts, scores=scores, mask=mask, ref_logps=ref_logps)
    best = scores.masked_fill(~mask, float("-inf")).argmax(dim=1, keepdim=True)
    worst = scores.masked_fill(~mask, float("inf")).argmin(dim=1, keepdim=True)
    return batch, logps.gather(1, best).squeeze(1), logps.gather(1, worst).squeeze(1)


def _sft_term(loss: Loss, batch: Any, preferred_logps: torch.Tensor) -> torch.Tensor:
    """Per-example NLL of the preferred answer, 0 for undesirable unpaired examples."""
    if loss.kind == "pair":
        return sft(batch.chosen_logps, batch.chosen_counts)
    if loss.kind == "unpaired":
        return torch.where(batch.labels, sft(batch.logps, batch.counts), torch.zeros_like(batch.logps))
    best = batch.scores.masked_fill(~batch.mask, float("-inf")).argmax(dim=1, keepdim=True)
    return sft(preferred_logps, batch.counts.gather(1, best).squeeze(1))


def micro_batch_loss(model: Any, loss: Loss, settings: LossSettings, state: LossState, examples: list[Example],
                     offsets: list[int], reference: torch.Tensor | None, pad_id: int,
                     layout: str) -> tuple[LossOutput, torch.Tensor, torch.Tensor, int]:
    """Run the policy on a micro-batch and return (loss output, preferred logps, dispreferred logps, tokens)."""
    batch = make_batch([example.unit for example in examples], pad_id, layout)
    sums, counts = sequence_logps(model, batch)
    if bool((counts == 0).any()):
        empty = sorted({examples[_owner(examples, i)].where for i in (counts == 0).nonzero().flatten().tolist()})
        raise DataError(f"records {', '.join(empty)} have an answer with no scored token; "
                        "give them a non-empty prompt or a longer answer")
    loss_batch, preferred, dispreferred = _loss_inputs(loss, examples, sums, counts, reference, offsets)
    function = loss.load()
    output = function(loss_batch, settings, state) if loss.stateful else function(loss_batch, settings)
    if settings.sft_weight and not loss.own_sft:
        output.losses = output.losses + settings.sft_weight * _sft_term(loss, loss_batch, preferred)
    return output, preferred, dispreferred, batch.tokens


def _owner(examples: list[Example], sequence: int) -> int:
    for index, example in enumerate(examples):
        if sequence < len(example.sequences):
            return index
        sequence -= len(example.sequences)
    raise IndexError(sequence)


def _check_finite(output: LossOutput, examples: list[Example], step: int, world_size: int,
                  device: torch.device) -> None:
    bad = ~torch.isfinite(output.losses.detach())
    flag = bad.any().to(torch.float32).reshape(1)
    if world_size > 1:
        flag = flag.to(device)
        torch.distributed.all_reduce(flag)
    if not bool(flag.item()):
        return
    if not bool(bad.any()):
        raise RuntimeFailure(f"step {step + 1}: another process got a non-finite loss; see its error")
    records = [f"{examples[i].where} (loss {output.losses[i].item()})" for i in bad.nonzero().flatten().tolist()]
    raise RuntimeFailure(f"step {step + 1}: non-finite loss for records {', '.join(records)}; "
                         "lower --lr, check --beta, or remove these records")


# -- the loop ---------------------------------------------------------------------


def train(model: Any, unwrapped: Any, optimizer: Any, scheduler: Any, loss: Loss, settings: LossSettings,
          state: LossState, examples: list[Example], reference: torch.Tensor | None, options: LoopOptions,
          outdir: str, pad_id: int, dist: Distributed, metrics: MetricsWriter | None,
          resume_from: str | None = None, progress: Any = None, run_fingerprint: str = "") -> dict[str, Any]:
    """Train until ``total_steps``; return a summary. ``metrics`` and ``progress`` are None except on rank 0."""
    offsets_all = []
    position = 0
    for example in examples:
        offsets_all.append(position)
        position += len(example.sequences)

    steps_total = total_steps(examples, options, dist.world_size)
    step, epoch, done_in_epoch = 0, 0, 0
    if resume_from:
        saved = load_checkpoint(resume_from, unwrapped, optimizer, scheduler, dist.rank)
        if saved.get("fingerprint") != run_fingerprint:
            raise RuntimeFailure(f"checkpoint {resume_from} belongs to a run with other data or options; "
                                 "rerun with the same input and options, or train into a new -o directory")
        step, epoch, done_in_epoch = saved["step"], saved["epoch"], saved["done_in_epoch"]
        state.load_state_dict(saved["loss_state"])
    if progress is not None:
        progress.reset(total=steps_total)
        progress.update(step)

    model.train()
    accumulator = MetricsAccumulator()
    grad_norm = float("nan")
    while step < steps_total:
        steps = global_batches(examples, options, epoch, dist.world_size)
        for index in range(done_in_epoch, len(steps)):
            group = steps[index]
            state.progress = step / steps_total
            step_examples = sum(len(batch) for batch in group)

            # Forward and backward over the micro-batches of one optimizer step.
            for micro, global_batch in enumerate(group):
                mine = shard(global_batch, dist.rank, dist.world_size)
                last = micro == len(group) - 1
                context = contextlib.nullcontext() if last else dist.no_sync(model)
                with context:
                    chosen_examples = [examples[i] for i in mine]
                    output, preferred, dispreferred, tokens = micro_batch_loss(
                        model, loss, settings, state, chosen_examples, [offsets_all[i] for i in mine], reference,
                        pad_id, options.layout)
                    _check_finite(output, chosen_examples, step, dist.world_size, dist.device)
                    # Sum over this process's examples, scaled so the gradient is the mean over the global step.
                    dist.backward(output.losses.sum() * dist.world_size / step_examples)
                accumulator.add(output.losses, output.chosen_rewards, output.rejected_rewards, preferred,
                                dispreferred, paired=loss.kind != "unpaired", tokens=tokens)

            # Clip, step, schedule.
            if options.max_grad_norm > 0 and dist.clip is not None:
                grad_norm = float(dist.clip(model.parameters(), options.max_grad_norm))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            done_in_epoch = index + 1

            # Log.
            if step % options.log_every == 0 or step == steps_total:
                record = accumulator.line(step, epoch + done_in_epoch / len(steps), scheduler.get_last_lr()[0],
                                          grad_norm, dist.world_size, dist.device)
                if metrics is not None:
                    metrics.write(record)
            if progress is not None:
                progress.update(1)

            # Checkpoint.
            if options.save_every and step % options.save_every == 0 and step < steps_total:
                saved_epoch, saved_done = (epoch + 1, 0) if done_in_epoch == len(steps) else (epoch, done_in_epoch)
                save_checkpoint(outdir, step, unwrapped, optimizer, scheduler,
                                {"step": step, "epoch": saved_epoch, "done_in_epoch": saved_done,
                                 "loss_state": state.state_dict(), "fingerprint": run_fingerprint},
                                dist.rank, dist.world_size)
            if step >= steps_total:
                break
        else:
            epoch += 1
            done_in_epoch = 0
            continue
        break
    return {"steps": step, "epochs": round(epoch + done_in_epoch / max(len(steps), 1), 4)}
