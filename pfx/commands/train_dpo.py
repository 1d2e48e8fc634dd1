"""``pfx train-dpo``: train a policy with a DPO-family loss and write a Hugging Face model directory."""

from __future__ import annotations

import os

import click

from pfx.losses import LOSSES, loss_help
from pfx.model.config import ModelOptions
from pfx.options import io_options, model_options
from pfx.runner import IOOptions

HELP = f"""Train a policy with a DPO-family loss on preference records.

Reads pair, unpaired or list records (as --loss needs) from FILE... or stdin,
computes reference log-probs once (cached on disk under a key of reference
weights, data and tokenization), trains, and writes OUTDIR: a Hugging Face
model directory (safetensors, tokenizer, chat template) plus
train_config.json. Metrics go to stdout as one JSON line per logging step
(or to --metrics FILE); the summary goes to stderr.

Run the same command under `torchrun --nproc_per_node N` (CPUs or GPUs) or
`accelerate launch --multi_gpu` for DDP (FSDP and DeepSpeed through an
accelerate config); give input files, not stdin, then.

\b
Losses (name, record kind, what it is):
{loss_help()}

\b
Example:
  python -m pfx.tiny lm
  pfx train-dpo --model lm --lr 1e-3 --max-steps 20 -o policy fixtures/train/pairs.jsonl
  pfx train-dpo --model lm --loss kto --lora-r 8 --lr 1e-3 --max-steps 20 -o kto-policy fixtures/train/unpaired.jsonl
  torchrun --nproc_per_node 2 -m pfx train-dpo --model lm --device cpu --max-steps 10 -o ddp-policy fixtures/train/pairs.jsonl
"""

SMOOTHING_LOSSES = [name for name, loss in LOSSES.items() if loss.smoothing]


@click.command("train-dpo", help=HELP, short_help="Train a policy with a DPO-family loss.")
@io_options(with_output=False)
@model_options
@click.option("-o", "--output-dir", "outdir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the trained model, train_config.json and checkpoints to (created).")
@click.option("--ref", metavar="PATH_OR_HUB_ID", help="Reference model. Default: the initial policy (with LoRA: the base "
              "model with adapters disabled).")
@click.option("--loss", "loss_name", type=click.Choice(list(LOSSES)), default="dpo", show_default=True,
              help="Loss; see the list above.")
@click.option("--beta", type=float, help="Loss temperature beta. Default 0.1 (2.0 for simpo and ln-dpo).")
@click.option("--smoothing", type=float, default=0.0, show_default=True,
              help=f"Label smoothing / flip rate epsilon in [0, 0.5) for {', '.join(SMOOTHING_LOSSES)}.")
@click.option("--confidence-as-smoothing", is_flag=True,
              help="Set each pair's epsilon to 1 - its 'confidence' field (cdpo, rdpo).")
@click.option("--gamma", type=float, default=1.6, show_default=True, help="SimPO target margin gamma.")
@click.option("--desirable-weight", type=float, default=1.0, show_default=True, help="KTO weight of desirable examples.")
@click.option("--undesirable-weight", type=float, default=1.0, show_default=True,
              help="KTO weight of undesirable examples.")
@click.option("--sft-weight", type=float, help="Weight of an added NLL term on the preferred answer "
              "(per token). Default 0 (0.05 for pro, whose term is a sum).")
@click.option("--noise-alpha", type=float, default=0.1, show_default=True,
              help="noise-aware: smoothing applied to low-margin pairs.")
@click.option("--noise-quantile", type=float, default=0.1, show_default=True,
              help="noise-aware: quantile of the last 50 step margins below which a pair counts as noisy.")
@click.option("--noise-warmup", type=float, default=0.2, show_default=True,
              help="noise-aware: fraction of training before smoothing starts.")
@click.option("--lr", type=float, default=1e-6, show_default=True, help="Peak learning rate (AdamW).")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True, help="Passes over the data.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Optimizer steps to train; overrides --epochs.")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
              help="Micro-batches of --batch-size per optimizer step (per process).")
@click.option("--warmup", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Learning-rate warmup: a fraction of all steps when below 1, else a number of steps.")
@click.option("--scheduler", type=click.Choice(["linear", "cosine", "constant"]), default="linear", show_default=True,
              help="Learning-rate decay after warmup.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True, help="AdamW weight decay.")
@click.option("--max-grad-norm", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Clip the gradient norm to this value; 0 turns clipping off.")
@click.option("--save-every", type=click.IntRange(min=1), help="Write a checkpoint every N optimizer steps.")
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in OUTDIR.")
@click.option("--log-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Optimizer steps per metrics line.")
@click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False),
              help="Append metrics JSON lines to FILE instead of stdout.")
@click.option("--layout", type=click.Choice(["shared-prompt", "packed", "padded"]), default="shared-prompt",
              show_default=True, help="Batch layout: a pair's prompt once for both answers, sequences packed per row, "
              "or one padded sequence per row. A layout that is inexact on the model falls back to the next.")
@click.option("--ref-cache", type=click.Path(file_okay=False),
              help="Directory of cached reference log-probs. Default: $XDG_CACHE_HOME/pfx/ref-logps.")
@click.option("--lora-r", type=click.IntRange(min=0), default=0, show_default=True,
              help="Train LoRA adapters of this rank instead of all weights (0: full fine-tuning).")
@click.option("--lora-alpha", type=float, default=16.0, show_default=True, help="LoRA scaling alpha.")
@click.option("--lora-dropout", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="LoRA dropout.")
@click.option("--bco-embedding-model", metavar="PATH_OR_HUB_ID",
              help="bco: reweight undesirable examples by a prompt density ratio from this model's embeddings "
              "(underlying distribution matching).")
@click.option("--bco-prompt-sample", type=click.IntRange(min=2), default=1024, show_default=True,
              help="bco: prompts of each class to fit the distribution classifier on.")
@click.option("--lora-targets", help="Comma-separated module names to adapt, e.g. q_proj,v_proj. Default: all linear layers.")
def command(io: IOOptions, model_options: ModelOptions, outdir: str, ref: str | None, loss_name: str,
            beta: float | None, smoothing: float, confidence_as_smoothing: bool, gamma: float, desirable_weight: float,
            undesirable_weight: float, sft_weight: float | None, noise_alpha: float, noise_quantile: float,
            noise_warmup: float, lr: float, epochs: int, max_steps: int | None, grad_accum: int, warmup: float,
            scheduler: str, weight_decay: float, max_grad_norm: float, save_every: int | None, resume: bool,
            log_every: int, metrics_path: str | None, layout: str, ref_cache: str | None, lora_r: int,
            lora_alpha: float, lora_dropout: float, bco_embedding_model: str | None, bco_prompt_sample: int,
            lora_targets: str | None) -> None:
    from pfx.losses.base import LossSettings
    from pfx.train.loop import LoopOptions
    from pfx.train.session import TrainConfig, run_training

    loss = LOSSES[loss_name]
    # Usage checks come before anything is read or loaded.
    if not model_options.model:
        raise click.UsageError("--model is required: the path or hub id of the policy to train")
    if smoothing and not loss.smoothing:
        raise click.UsageError(f"--smoothing applies to {', '.join(SMOOTHING_LOSSES)}, not --loss {loss_name}")
    if not 0 <= smoothing < 0.5:
        raise click.UsageError(f"--smoothing {smoothing} is outside [0, 0.5)")
    if confidence_as_smoothing and not loss.smoothing:
        raise click.UsageError(f"--confidence-as-smoothing applies to {', '.join(SMOOTHING_LOSSES)}, "
                               f"not --loss {loss_name}")
    if ref and not loss.reference:
        raise click.UsageError(f"--loss {loss_name} uses no reference model; drop --ref")
    if bco_embedding_model and loss_name != "bco":
        raise click.UsageError(f"--bco-embedding-model applies to --loss bco, not --loss {loss_name}")
    if not lora_r and (lora_targets or lora_dropout):
        raise click.UsageError("--lora-targets and --lora-dropout need --lora-r (the LoRA rank)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not [f for f in io.files if f != "-"]:
        raise click.UsageError("under torchrun or accelerate launch, give input FILEs: every process reads them")
    _check_outdir(outdir, resume)

    defaults = loss.defaults
    settings = LossSettings(
        beta=beta if beta is not None else defaults.get("beta", 0.1), smoothing=smoothing, gamma=gamma,
        desirable_weight=desirable_weight, undesirable_weight=undesirable_weight,
        sft_weight=sft_weight if sft_weight is not None else defaults.get("sft_weight", 0.0),
        noise_alpha=noise_alpha, noise_quantile=noise_quantile, noise_warmup=noise_warmup,
    )
    loop = LoopOptions(epochs=epochs, max_steps=max_steps, batch_size=model_options.batch_size, grad_accum=grad_accum,
                       lr=lr, warmup=warmup, scheduler=scheduler, weight_decay=weight_decay, max_grad_norm=max_grad_norm,
                       seed=model_options.seed, save_every=save_every, log_every=log_every, layout=layout)
    config = TrainConfig(
        model=model_options.model, outdir=outdir, loss=loss_name, ref=ref, loss_settings=settings, loop=loop,
        confidence_as_smoothing=confidence_as_smoothing, lora_r=lora_r, lora_alpha=lora_alpha,
        lora_dropout=lora_dropout, lora_targets=tuple(t.strip() for t in (lora_targets or "").split(",") if t.strip()),
        ref_cache=ref_cache, metrics=metrics_path, resume=resume, bco_embedding_model=bco_embedding_model,
        bco_prompt_sample=bco_prompt_sample,
    )
    os.makedirs(outdir, exist_ok=True)
    run_training(config, io, model_options)


def _check_outdir(outdir: str, resume: bool) -> None:
    from pfx.train.checkpoint import latest_checkpoint

    if resume:
        if latest_checkpoint(outdir) is None:
            raise click.UsageError(f"--resume: no checkpoint in {outdir}/checkpoints; "
                                   "start without --resume, with --save-every N")
        return
    if os.path.isdir(outdir) and os.listdir(outdir):
        raise click.UsageError(f"-o {outdir} is not empty; choose a new directory, or pass --resume to continue "
                               "the run it holds")
