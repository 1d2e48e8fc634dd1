"""One ``pfx train-dpo`` run in order: load, tokenize, reference log-probs, train, save.

Multi-process runs (``torchrun`` or ``accelerate launch``) execute this same
code in every process. accelerate sets up DDP (or FSDP and DeepSpeed from an
accelerate config), and every process reads and tokenizes the whole input.
Rank 0 alone writes metrics, the shared checkpoint files and the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pfx.errors import DataError, RuntimeFailure
from pfx.losses import Loss
from pfx.losses.base import LossSettings, LossState
from pfx.model.config import ModelOptions
from pfx.runner import IOOptions, Run
from pfx.train.loop import LoopOptions

CONFIG_FILE = "train_config.json"


@dataclass
class TrainConfig:
    """Everything that defines a run; written to OUTDIR/train_config.json."""

    model: str
    outdir: str
    loss: str
    ref: str | None = None
    loss_settings: LossSettings = field(default_factory=LossSettings)
    loop: LoopOptions = field(default_factory=LoopOptions)
    confidence_as_smoothing: bool = False
    lora_r: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()
    bco_embedding_model: str | None = None  # BCO distribution matching: the prompt embedding model
    bco_prompt_sample: int = 1024  # prompts of each class the distribution classifier is fitted on
    ref_cache: str | None = None
    metrics: str | None = None
    resume: bool = False

    def fingerprint(self) -> str:
        """Hash of the settings a resumed run must share (not the step limit, paths or metrics file)."""
        data = dataclasses.asdict(self)
        for name in ("outdir", "ref_cache", "metrics", "resume"):
            data.pop(name)
        data["loop"].pop("max_steps")
        data["loop"].pop("epochs")
        data["loop"].pop("save_every")
        data["loop"].pop("log_every")
        return hashlib.blake2b(json.dumps(data, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


class TrainRun(Run):
    """A ``Run`` whose summary line counts the records trained on, since train-dpo writes no records."""

    def summary_line(self) -> str:
        line = f"pfx {self.command}: read {self.read}, trained on {self.counts.get('trained', 0)}"
        total_rejected = sum(self.rejected.values())
        if total_rejected:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in self.rejected.most_common())
            line += f", rejected {total_rejected} ({reasons})"
        others = [f"{name}: {n}" for name, n in self.counts.items() if name != "trained"]
        return line + ("; " + ", ".join(others) if others else "")


def run_training(config: TrainConfig, io: IOOptions, model_options: ModelOptions) -> None:
    """Train a policy with the settings in ``config`` and write the model directory."""
    import torch
    from accelerate import Accelerator

    from pfx.model.loading import load_causal_lm, resolve_device
    from pfx.model.tokenize import Encoder
    from pfx.train.checkpoint import latest_checkpoint
    from pfx.train.data import load_examples
    from pfx.train.loop import Distributed, dropped_tail, make_scheduler, total_steps, train
    from pfx.train.metrics import MetricsWriter

    # Set up processes and seeds first: accelerate picks this process's device.
    accelerator = Accelerator(cpu=resolve_device(model_options.device).type == "cpu")
    rank, world_size = accelerator.process_index, accelerator.num_processes
    torch.manual_seed(config.loop.seed)
    if rank > 0:
        io = dataclasses.replace(io, rejects=None, summary=None, quiet=True, progress=False)
    run = TrainRun(command="train-dpo", options=io)
    loss = _loss(config.loss)

    # Load the policy (with fresh LoRA adapters if asked).
    _quiet_transformers()
    model, tokenizer = load_causal_lm(config.model, model_options)
    if config.lora_r:
        model = _add_lora(model, config)
    _disable_dropout(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # Read and tokenize the records.
    encoder = Encoder(tokenizer, model_options.max_length, model_options.truncation)
    try:
        examples = load_examples(run, encoder, loss, config.confidence_as_smoothing, config.loop.seed)
    finally:
        run.close()

    if config.bco_embedding_model:
        _match_distributions(examples, config, model_options)

    # Pick the batch layout on the real model, then get reference log-probs from the cache or one pass.
    layout = _exact_layout(model, examples, pad_id, config.loop.layout)
    config.loop.layout = layout
    reference, ref_cached = None, False
    if loss.reference:
        reference, ref_cached = _reference_logps(model, tokenizer, examples, config, model_options, pad_id, layout,
                                                 accelerator)

    # Optimizer, scheduler, processes.
    steps = total_steps(examples, config.loop, world_size)
    if steps == 0:
        raise DataError(f"{len(examples)} records make no batch for {world_size} processes; "
                        "give at least one record per process")
    warmup = int(config.loop.warmup * steps) if config.loop.warmup < 1 else int(config.loop.warmup)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.loop.lr, weight_decay=config.loop.weight_decay)
    scheduler = make_scheduler(optimizer, config.loop.scheduler, warmup, steps)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    dist = Distributed(rank=rank, world_size=world_size, device=accelerator.device, backward=accelerator.backward,
                       no_sync=accelerator.no_sync, clip=accelerator.clip_grad_norm_)

    # Train.
    resume_from = latest_checkpoint(config.outdir) if config.resume else None
    metrics = MetricsWriter(config.metrics) if rank == 0 else None
    progress = _progress_bar(io) if rank == 0 else None
    started, started_cpu = time.monotonic(), time.process_time()
    try:
        summary = train(wrapped, accelerator.unwrap_model(wrapped), optimizer, scheduler, loss, config.loss_settings,
                        LossState(), examples, reference, config.loop, config.outdir, pad_id, dist, metrics,
                        resume_from=resume_from, progress=progress, run_fingerprint=_run_fingerprint(config, examples))
    finally:
        if metrics is not None:
            metrics.close()
        if progress is not None:
            progress.close()
    train_seconds, train_cpu_seconds = time.monotonic() - started, time.process_time() - started_cpu

    # Save the model directory.
    accelerator.wait_for_everyone()
    # Only FSDP and DeepSpeed shard the weights, so only they need accelerate to gather a full state dict.
    sharded = accelerator.distributed_type.name in ("FSDP", "DEEPSPEED")
    state_dict = accelerator.get_state_dict(wrapped) if sharded else None
    if rank == 0:
        _save_model(accelerator.unwrap_model(wrapped), state_dict, tokenizer, config, examples, summary,
                    {"reference_cached": ref_cached, "layout": layout, "processes": world_size})
    accelerator.wait_for_everyone()

    run.count("trained", len(examples))
    run.count("steps", summary["steps"])
    tail = dropped_tail(examples, config.loop, world_size)
    if tail:
        run.count("left out of the last partial batch per epoch", tail)
    run.extra.update({"steps": summary["steps"], "epochs": summary["epochs"], "outdir": config.outdir,
                      "reference_cached": ref_cached, "layout": layout, "train_seconds": round(train_seconds, 3),
                      "train_cpu_seconds": round(train_cpu_seconds, 3)})
    # Every process leaves the process group together, before the summary is written.
    # NOTE: a run on a loaded 2-core machine once saw the second of two gloo processes abort
    # (SIGABRT) while leaving the group. Whether this ordering prevents that is not known.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    run.finish()


def _loss(name: str) -> Loss:
    from pfx.losses import get_loss

    return get_loss(name)


def _quiet_transformers() -> None:
    from transformers.utils import logging as transformers_logging

    # Packed rows carry no attention mask on purpose, so the warning about a missing mask would be noise.
    transformers_logging.set_verbosity_error()


def _add_lora(model: Any, config: TrainConfig) -> Any:
    import warnings

    from peft import LoraConfig, get_peft_model

    targets: Any = list(config.lora_targets) if config.lora_targets else "all-linear"
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        # peft 0.21 reads an attribute that transformers 5 deprecates, which the user cannot act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lora)


def _disable_dropout(model: Any) -> None:
    """Set every dropout to 0, as TRL's DPOTrainer does by default, because the cached reference ran without it."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout) and "lora" not in type(module).__module__:
            module.p = 0.0


def _match_distributions(examples: list, config: TrainConfig, model_options: ModelOptions) -> None:
    """Set BCO's density-ratio weight on every unpaired example, with the embedding model loaded only for this."""
    from pfx.model.loading import load_causal_lm
    from pfx.train.udm import undesirable_weights

    model, tokenizer = load_causal_lm(config.bco_embedding_model, model_options)
    try:
        weights = undesirable_weights(model, tokenizer, [example.prompt_text for example in examples],
                                      [bool(example.label) for example in examples], config.bco_prompt_sample,
                                      config.loop.seed)
    except ValueError as error:
        raise RuntimeFailure(f"--bco-embedding-model: {error}") from error
    for example, weight in zip(examples, weights):
        example.weight = weight
    del model


def _exact_layout(model: Any, examples: list, pad_id: int, requested: str) -> str:
    """Return the first layout from ``requested`` on (in LAYOUTS order) that is exact on this model."""
    from pfx.train.forward import LAYOUTS, layout_is_exact

    units = [example.unit for example in examples[:2]]
    for layout in LAYOUTS[LAYOUTS.index(requested):]:
        if layout_is_exact(model, units, pad_id, layout):
            if layout != requested:
                print(f"pfx train-dpo: this model's attention gives inexact log-probs in the {requested} layout; "
                      f"using {layout}", file=sys.stderr)
            return layout
    raise AssertionError("the padded layout is always exact")


def _reference_logps(model: Any, tokenizer: Any, examples: list, config: TrainConfig, model_options: ModelOptions,
                     pad_id: int, layout: str, accelerator: Any) -> tuple[Any, bool]:
    """Return per-sequence reference log-prob sums and whether they came from the cache.

    The reference is ``--ref`` when given (loaded only for this pass), else the
    initial policy; with LoRA, the policy with its adapters disabled.
    """
    import contextlib

    import torch

    from pfx.model.loading import load_causal_lm
    from pfx.train import reference as ref

    sequences = ref.flatten(examples)
    reference_model = model
    if config.ref:
        reference_model, ref_tokenizer = load_causal_lm(config.ref, model_options)
        if ref_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise RuntimeFailure(f"--ref {config.ref} has another vocabulary than --model {config.model}; "
                                 "a reference must share the policy's tokenizer")
    disable = getattr(reference_model, "disable_adapter", None) if config.lora_r and not config.ref else None
    with disable() if disable else contextlib.nullcontext():
        dtype = next(reference_model.parameters()).dtype
        key = ref.cache_key(ref.weights_fingerprint(reference_model), ref.data_fingerprint(sequences), dtype, layout)
        path = os.path.join(config.ref_cache or ref.default_cache_dir(), f"{key}.safetensors")
        cached = ref.load_cached(path)
        if cached is not None and len(cached[0]) == len(sequences):
            sums, from_cache = cached[0], True
        else:
            sums, counts = ref.compute_logps(reference_model, examples, 2 * config.loop.batch_size, pad_id, layout,
                                             accelerator.process_index, accelerator.num_processes)
            if accelerator.process_index == 0:
                ref.save_cached(path, sums, counts)
            from_cache = False
    if reference_model is not model:
        del reference_model
    accelerator.wait_for_everyone()
    return sums.to(torch.float32), from_cache


def _run_fingerprint(config: TrainConfig, examples: list) -> str:
    from pfx.train.reference import data_fingerprint, flatten

    return hashlib.blake2b(f"{config.fingerprint()}:{data_fingerprint(flatten(examples))}".encode(),
                           digest_size=16).hexdigest()


def _progress_bar(io: IOOptions) -> Any:
    from tqdm import tqdm

    show = io.progress or (sys.stderr.isatty() and not io.quiet)
    return tqdm(total=0, unit="step", desc="pfx train-dpo", file=sys.stderr, disable=not show, leave=False)


def _save_model(model: Any, state_dict: dict | None, tokenizer: Any, config: TrainConfig, examples: list,
                summary: dict[str, Any], details: dict[str, Any]) -> None:
    """Write the model directory: weights (LoRA merged), tokenizer and train_config.json.

    Files are written to a temporary directory inside OUTDIR and then renamed
    one by one, so each file appears whole.
    """
    from pfx.train.reference import fsync_directory

    temporary = os.path.join(config.outdir, f".tmp-model-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    if config.lora_r:
        model = model.merge_and_unload()
        state_dict = None
    model.save_pretrained(temporary, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(temporary)
    record = dataclasses.asdict(config)
    record.update(summary=summary, records=len(examples), **details)
    with open(os.path.join(temporary, CONFIG_FILE), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, default=str)
    for name in os.listdir(temporary):
        source = os.path.join(temporary, name)
        with open(source, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, os.path.join(config.outdir, name))
    os.rmdir(temporary)
    fsync_directory(config.outdir)
