"""Time TRL's reference log-prob precompute on the pairs of bench_score.py, as a peer figure.

TRL's DPOTrainer with ``precompute_ref_log_probs=True`` tokenizes the dataset and
runs the reference model over every pair it keeps when it is constructed: the nearest
TRL equivalent of ``pfx score --logps``. Configured as an informed CPU user
would: float32, no gradient checkpointing, ``use_cpu=True``, the same max
length and batch size as pfx, one torch thread. TRL truncates differently
(it cuts the whole sequence from the end), so its log-probs are not compared
value by value, only timed.

Run with the benchmark venv (TRL and datasets are not pfx dependencies):
    .venv-bench/bin/python bench/score/peer_trl.py --pairs 2000 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "score"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    import orjson
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from bench_score import load_pairs
    from pfx.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="pfx-bench-trl-"))
    model_dir = build_tiny_model(str(workdir / "model"), "llama", seed=0, hidden_size=args.hidden_size,
                                 layers=args.layers)
    data = load_pairs(args.pairs, workdir)
    rows = [orjson.loads(line) for line in data.read_bytes().splitlines()]
    dataset = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
                                 for r in rows])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = DPOConfig(output_dir=str(workdir / "out"), precompute_ref_log_probs=True,
                       precompute_ref_batch_size=args.batch_size, per_device_train_batch_size=args.batch_size,
                       max_length=args.max_length, bf16=False, fp16=False, use_cpu=True,
                       gradient_checkpointing=False, report_to=[])

    timings: dict[str, list[float]] = {}
    original = DPOTrainer._precompute_ref_logps

    def timed_precompute(self, *inner, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = original(self, *inner, **kwargs)
        timings["precompute"] = [time.perf_counter() - wall, time.process_time() - cpu]
        return result

    DPOTrainer._precompute_ref_logps = timed_precompute
    wall, cpu = time.perf_counter(), time.process_time()
    trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    total = [time.perf_counter() - wall, time.process_time() - cpu]
    count = len(trainer.train_dataset)

    # Defaults read from the dataclass fields: DPOConfig() itself raises on a CPU-only machine,
    # because its bf16 default needs a GPU unless use_cpu is set.
    defaults = {field.name: field.default for field in dataclasses.fields(DPOConfig)}
    figures = {
        "trl_version": __import__("trl").__version__,
        "pairs": count,
        "threads": args.threads,
        "trl_precompute_pairs_per_s": count / timings["precompute"][0],
        "trl_precompute_pairs_per_cpu_s": count / timings["precompute"][1],
        "trl_init_with_tokenization_pairs_per_s": count / total[0],
        "trl_init_with_tokenization_pairs_per_cpu_s": count / total[1],
        "trl_defaults": {name: defaults.get(name) for name in ("max_length", "precompute_ref_batch_size",
                                                               "per_device_train_batch_size", "truncation_mode",
                                                               "bf16", "use_logits_to_keep")},
        "ref_chosen_logps_first": float(trainer.train_dataset[0]["ref_chosen_logps"]),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    main()
