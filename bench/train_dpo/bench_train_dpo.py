"""Benchmark `pfx train-dpo --loss dpo` against TRL's DPOTrainer on the same model, data and settings.

Run with the benchmark environment, which has TRL and pfx installed:

    .venv-bench/bin/python bench/train_dpo/bench_train_dpo.py --workdir /tmp/bench-train-dpo

It builds a tiny llama (hidden 256, 4 layers, 512-token vocabulary) with
pfx.tiny, converts the first 200 HH-RLHF harmless-base test pairs with
`pfx convert`, and runs each trainer in its own process, one after the other:

- speed: pfx, TRL as an informed CPU user configures it (float32, no gradient
  checkpointing, precompute_ref_log_probs=True), and TRL with its defaults
  (bf16 autocast, gradient checkpointing); samples/s of the training loop
  (after the reference pass) and peak resident memory of the process;
- agreement: 16 pairs that fit in --max-length untruncated, batch 16, two
  steps, so both trainers see the same batch twice. The losses at step 1
  (log 2) and step 2 (after one identical update) must agree.

Results go to WORKDIR/results-MAXLENGTH.json; bench/train_dpo/RESULTS.md
records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base" / "test.first200.jsonl"
PFX_PYTHON = ROOT / ".venv" / "bin" / "python"


def run_child(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run a command to its end; return (wall seconds, peak resident memory of that process in MiB)."""
    import tempfile

    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        # wait4 reports the rusage of this one child, so its peak memory is not mixed with the others'.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise SystemExit(f"{' '.join(command[:5])} failed:\n{stderr.read().decode()[-3000:]}")
    # Linux reports ru_maxrss in KiB.
    return wall, usage.ru_maxrss // 1024


def prepare(workdir: Path) -> tuple[Path, Path]:
    from pfx.tiny import build_tiny_model

    model = workdir / "model"
    if not (model / "model.safetensors").exists():
        build_tiny_model(str(model), arch="llama", seed=0, hidden_size=256, layers=4)
    pairs = workdir / "hh-pairs.jsonl"
    converted = subprocess.run([str(PFX_PYTHON), "-m", "pfx", "convert", "--from", "hh-rlhf", str(HH)],
                               capture_output=True, check=True)
    pairs.write_bytes(converted.stdout)
    return model, pairs


def fitting_pairs(model: Path, pairs: Path, max_length: int, count: int, out: Path) -> Path:
    """Write the first ``count`` pairs whose prompt + longer answer (+ EOS) fit in ``max_length`` tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    kept = []
    for line in pairs.read_text().splitlines():
        record = json.loads(line)
        longest = max(len(tokenizer(record["prompt"] + record[side])["input_ids"]) for side in ("chosen", "rejected"))
        if longest + 1 <= max_length and record["chosen"].strip() and record["rejected"].strip():
            kept.append(line)
        if len(kept) == count:
            break
    out.write_text("\n".join(kept) + "\n")
    return out


# -- the two trainers --------------------------------------------------------------------------


def pfx_command(model: Path, data: Path, outdir: Path, args: argparse.Namespace, batch: int, steps: int,
                summary: Path, metrics: Path) -> list[str]:
    return [str(PFX_PYTHON), "-m", "pfx", "train-dpo", "--model", str(model), "--loss", "dpo", "--beta", "0.1",
            "--lr", str(args.lr), "--batch-size", str(batch), "--max-steps", str(steps), "--max-length",
            str(args.max_length), "--device", "cpu", "--dtype", "float32", "--ref-cache", str(outdir.parent / "ref-cache"),
            "--summary", str(summary), "--metrics", str(metrics), "-o", str(outdir), str(data)]


def trl_command(model: Path, data: Path, outdir: Path, args: argparse.Namespace, batch: int, steps: int,
                result: Path, defaults: bool) -> list[str]:
    return [sys.executable, __file__, "trl-child", "--model", str(model), "--data", str(data), "--outdir", str(outdir),
            "--lr", str(args.lr), "--batch", str(batch), "--steps", str(steps), "--max-length", str(args.max_length),
            "--result", str(result)] + (["--trl-defaults"] if defaults else [])


def trl_child(args: argparse.Namespace) -> None:
    """Train with TRL's DPOTrainer and write its losses and train-loop throughput to --result."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    records = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in records])
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="float32")
    informed = {} if args.trl_defaults else {"bf16": False, "gradient_checkpointing": False,
                                             "precompute_ref_log_probs": True}
    config = DPOConfig(output_dir=args.outdir, per_device_train_batch_size=args.batch, max_steps=args.steps,
                       learning_rate=args.lr, beta=0.1, max_length=args.max_length, logging_steps=1,
                       save_strategy="no", report_to=[], use_cpu=True, seed=0, lr_scheduler_type="linear",
                       warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, dataloader_num_workers=0, **informed)
    losses: list[float] = []

    class Losses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[Losses()])
    started_cpu = time.process_time()
    output = trainer.train()
    train_cpu_seconds = time.process_time() - started_cpu
    Path(args.result).write_text(json.dumps({"losses": losses, "train_seconds": output.metrics["train_runtime"],
                                             "train_cpu_seconds": train_cpu_seconds,
                                             "bf16": config.bf16, "gradient_checkpointing": config.gradient_checkpointing,
                                             "precompute_ref_log_probs": config.precompute_ref_log_probs}))


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "trl-child"])
    parser.add_argument("--workdir", default="/tmp/bench-train-dpo")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--max-length", type=int, default=1024, help="TRL's DPOConfig default is 1024")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each trainer process")
    # trl-child only
    parser.add_argument("--model")
    parser.add_argument("--data")
    parser.add_argument("--outdir")
    parser.add_argument("--result")
    parser.add_argument("--trl-defaults", action="store_true")
    args = parser.parse_args()
    if args.mode == "trl-child":
        trl_child(args)
        return

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model, pairs = prepare(workdir)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    results: dict[str, dict] = {}

    def fresh(name: str) -> Path:
        path = workdir / name
        stale = [path, workdir / "ref-cache", *workdir.glob(f"{name.removeprefix('out-')}*.json*")]
        subprocess.run(["rm", "-rf", *map(str, stale)], check=True)
        return path

    # Speed: the same data, batch, length and steps for each trainer.
    samples = args.batch * args.steps
    for name in ("pfx", "trl-informed", "trl-defaults"):
        outdir = fresh(f"out-{name}")
        result_file, metrics_file = workdir / f"{name}.json", workdir / f"{name}.metrics.jsonl"
        if name == "pfx":
            wall, peak = run_child(pfx_command(model, pairs, outdir, args, args.batch, args.steps, result_file,
                                                    metrics_file), env)
            summary = json.loads(result_file.read_text())
            losses = [json.loads(line)["loss"] for line in metrics_file.read_text().splitlines()]
            train_seconds, train_cpu = summary["train_seconds"], summary["train_cpu_seconds"]
        else:
            wall, peak = run_child(trl_command(model, pairs, outdir, args, args.batch, args.steps, result_file,
                                                    name == "trl-defaults"), env)
            summary = json.loads(result_file.read_text())
            losses, train_seconds, train_cpu = summary["losses"], summary["train_seconds"], summary["train_cpu_seconds"]
        results[name] = {"train_seconds": round(train_seconds, 2), "samples_per_second": round(samples / train_seconds, 2),
                         "train_cpu_seconds": round(train_cpu, 2), "samples_per_cpu_second": round(samples / train_cpu, 2),
                         "wall_seconds": round(wall, 2), "peak_rss_mib": peak, "first_loss": losses[0]}
        print(name, results[name], flush=True)

    # Agreement: both trainers see the same 16 pairs as one batch, twice.
    agreement_data = fitting_pairs(model, pairs, args.max_length, 16, workdir / "agreement-pairs.jsonl")
    agree_args = argparse.Namespace(**{**vars(args), "lr": 1e-3})
    outdir = fresh("agree-pfx")
    run_child(pfx_command(model, agreement_data, outdir, agree_args, 16, 2, workdir / "agree-pfx.json",
                          workdir / "agree-pfx.metrics.jsonl"), env)
    pfx_losses = [json.loads(line)["loss"] for line in (workdir / "agree-pfx.metrics.jsonl").read_text().splitlines()]
    outdir = fresh("agree-trl")
    run_child(trl_command(model, agreement_data, outdir, agree_args, 16, 2, workdir / "agree-trl.json", False), env)
    trl_losses = json.loads((workdir / "agree-trl.json").read_text())["losses"]
    results["agreement"] = {"pfx_losses": pfx_losses, "trl_losses": trl_losses}
    print("agreement", results["agreement"], flush=True)

    informed = results["trl-informed"]
    results["ratios"] = {
        "samples_per_second_vs_trl_informed": round(results["pfx"]["samples_per_second"] / informed["samples_per_second"], 2),
        "samples_per_cpu_second_vs_trl_informed": round(
            results["pfx"]["samples_per_cpu_second"] / informed["samples_per_cpu_second"], 2),
        "samples_per_second_vs_trl_defaults": round(
            results["pfx"]["samples_per_second"] / results["trl-defaults"]["samples_per_second"], 2),
        "peak_rss_vs_trl_informed": round(results["pfx"]["peak_rss_mib"] / informed["peak_rss_mib"], 2),
    }
    results["settings"] = {"threads": args.threads, "batch": args.batch, "steps": args.steps, "max_length": args.max_length, "lr": args.lr,
                           "model": "tiny llama, hidden 256, 4 layers, vocab 512", "data": "HH-RLHF harmless-base test, first 200"}
    (workdir / f"results-{args.max_length}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results["ratios"]))


if __name__ == "__main__":
    main()
