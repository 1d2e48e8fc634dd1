"""Benchmark ``pfx score --logps`` against plain transformers scoring loops.

Pairs come from the LLaMA-Factory DPO demo files (English and Chinese, 300 each),
converted with ``pfx convert`` and repeated in order up to ``--pairs``. The model
is a random tiny llama from ``pfx.tiny``, big enough that the forward passes
dominate. Five ways to get the same summed answer log-probs are timed:

1. plain loop: one unpadded sequence per forward pass (prompt + chosen, then
   prompt + rejected), log_softmax and a gather, under ``torch.no_grad``;
2. batched without prompt reuse: ``pair_logps(reuse_prompt=False)``, sequences
   sorted by length and right-padded, prompt run twice per pair;
3. batched with prompt reuse for every pair: ``pair_logps(reuse_prompt=True)``,
   prompt run once per pair and its key-value cache reused for both answers;
4. batched, the default: ``pair_logps()``, which reuses the prompt of the pairs
   where ``reuse_pays`` estimates that to be cheaper;
5. the command ``pfx score --logps`` end to end, in a subprocess (process start,
   model load, tokenization, JSONL in and out).

All five use the token ids of ``pfx.model.tokenize.Encoder``; 1-4 time only the
model passes. Each result is compared with the plain loop (max abs difference
of the summed log-probs). Other processes share the machine, so the in-process
variants run interleaved, slice by slice, and both wall time and this
process's CPU time are reported; with one torch thread CPU time is the
steadier measure of the work each variant does.

Run from the repository root:
    .venv/bin/python bench/score/bench_score.py --pairs 2000 --plain-pairs 300 --threads 1 --peer-trl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import torch

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "llama-factory" / "data"
SOURCES = ("dpo_en_demo.json", "dpo_zh_demo.json")
RANKINGS = ROOT.parent / "shared" / "data" / "sparse-feedback" / "alpaca_generation" / \
    "feedback_rankings_sample_generation.csv"


def load_pairs(count: int, workdir: Path) -> Path:
    """Convert the LLaMA-Factory files with pfx convert and repeat the records up to ``count``."""
    converted = subprocess.run([sys.executable, "-m", "pfx", "convert", "-q", "--from", "llama-factory",
                                *(str(DATA / name) for name in SOURCES)], capture_output=True, check=True).stdout
    records = [line for line in converted.splitlines() if line.strip()]
    path = workdir / "pairs.jsonl"
    with open(path, "wb") as handle:
        for index in range(count):
            handle.write(records[index % len(records)] + b"\n")
    return path


def load_ranking_pairs(workdir: Path) -> Path:
    """Convert the sparse-feedback rankings (pairs of 5 answers per instruction) with pfx convert, unrepeated."""
    converted = subprocess.run([sys.executable, "-m", "pfx", "convert", "-q", "--from", "sparse-feedback-rankings",
                                str(RANKINGS)], capture_output=True, check=True).stdout
    path = workdir / "pairs.jsonl"
    path.write_bytes(converted)
    return path


def plain_loop(model, pairs) -> list[tuple[float, float]]:
    """Score each prompt + answer as its own unpadded forward pass."""
    results = []
    with torch.no_grad():
        for pair in pairs:
            sums = []
            for answer in (pair.chosen_ids, pair.rejected_ids):
                ids = torch.tensor([pair.prompt_ids + answer])
                logprobs = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
                targets = ids[0, 1:]
                token_logps = logprobs.gather(-1, targets[:, None])[:, 0]
                sums.append(token_logps[len(pair.prompt_ids) - 1:].sum().item())
            results.append((sums[0], sums[1]))
    return results


def max_abs_difference(first, second) -> float:
    return max(abs(a - b) for left, right in zip(first, second) for a, b in zip(left, right))


class Clock:
    """Accumulate wall time and this process's CPU time over several timed sections."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> "Clock":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("llama-factory", "sparse-feedback-rankings"), default="llama-factory",
                        help="llama-factory: the DPO demo records repeated up to --pairs. sparse-feedback-rankings: "
                             "the 80 pairs of the rankings file, 4 per instruction, scored whole in every round; "
                             "--pairs and --plain-pairs are ignored and the command is not run (too few pairs "
                             "to time a process).")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--plain-pairs", type=int, default=300,
                        help="Pairs for the plain loop; its rate is measured on this subset.")
    parser.add_argument("--rounds", type=int, default=5,
                        help="Interleave the in-process variants in this many rounds, so load from other "
                             "processes affects them alike.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (also OMP_NUM_THREADS of the CLI run).")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, help="Also write the figures as JSON to this file.")
    parser.add_argument("--peer-trl", action="store_true",
                        help="Also time TRL's reference log-prob precompute (peer_trl.py, run with .venv-bench).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from pfx.model.config import ModelOptions
    from pfx.model.loading import load_causal_lm
    from pfx.model.logps import pair_logps, pass_costs, reuse_pays
    from pfx.model.tokenize import Encoder
    from pfx.tiny import build_tiny_model

    workdir = Path(tempfile.mkdtemp(prefix="pfx-bench-score-"))
    model_dir = build_tiny_model(str(workdir / "model"), "llama", seed=0, hidden_size=args.hidden_size,
                                 layers=args.layers)
    rankings = args.data == "sparse-feedback-rankings"
    data = load_ranking_pairs(workdir) if rankings else load_pairs(args.pairs, workdir)
    model, tokenizer = load_causal_lm(model_dir, ModelOptions(device="cpu", dtype="float32"))
    encoder = Encoder(tokenizer, args.max_length)
    records = [orjson.loads(line) for line in data.read_bytes().splitlines()]
    pairs = [encoder.encode_pair(r["prompt"], r["chosen"], r["rejected"]) for r in records]
    tokens = sum(len(p.prompt_ids) * 2 + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    costs = pass_costs(model)
    reused = sum(reuse_pays(len(p.prompt_ids), [len(p.chosen_ids), len(p.rejected_ids)], costs)
                 for p in pairs if p.prompt_ids)
    plain_count = len(pairs) if rankings else min(args.plain_pairs, len(pairs))
    figures: dict = {"data": args.data, "pairs": len(pairs), "plain_pairs": plain_count, "max_length": args.max_length,
                     "batch_size": args.batch_size, "hidden_size": args.hidden_size, "layers": args.layers,
                     "tokens_per_pair": tokens / len(pairs), "threads": args.threads,
                     "encoder_counts": dict(encoder.counts), "default_reused_pairs": reused}

    # In-process variants, interleaved: each round scores one slice of the pairs with every variant.
    variants = (("batched_no_reuse", False), ("batched_reuse", True), ("batched_default", None))
    clocks = {name: Clock() for name in ("plain_loop", *(name for name, _ in variants))}
    results: dict[str, list] = {name: [] for name in clocks}
    # The rankings file is small: each round scores all of it, in one call per variant, so that
    # pairs of one instruction share a call as they would in one pfx score chunk.
    for round_index in range(args.rounds):
        plain_slice = pairs[plain_count * round_index // args.rounds:plain_count * (round_index + 1) // args.rounds]
        batch_slice = pairs[len(pairs) * round_index // args.rounds:len(pairs) * (round_index + 1) // args.rounds]
        if rankings:
            plain_slice = batch_slice = pairs
        with clocks["plain_loop"]:
            results["plain_loop"] += plain_loop(model, plain_slice)
        for name, reuse in variants[:: 1 if round_index % 2 else -1]:
            with clocks[name]:
                scored = pair_logps(model, batch_slice, args.batch_size, reuse_prompt=reuse)
            results[name] += [(chosen.sum, rejected.sum) for chosen, rejected in scored]
    reference = results["plain_loop"][:plain_count]
    for name, clock in clocks.items():
        count = len(results[name])
        figures[f"{name}_pairs_per_s"] = count / clock.wall
        figures[f"{name}_pairs_per_cpu_s"] = count / clock.cpu
        if name != "plain_loop":
            figures[f"{name}_max_abs_diff"] = max_abs_difference(reference, results[name][:plain_count])

    if rankings:
        finish(figures, args, ("batched_no_reuse", "batched_reuse", "batched_default"))
        return
    output = workdir / "scored.jsonl"
    command = [sys.executable, "-m", "pfx", "score", "-q", "--logps", "--model", model_dir, "--device", "cpu",
               "--max-length", str(args.max_length), "--batch-size", str(args.batch_size), "-o", str(output),
               str(data)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures["cli_pairs_per_s"] = len(pairs) / wall
    figures["cli_pairs_per_cpu_s"] = len(pairs) / cpu
    scored_records = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    cli_sums = [(r["logps_chosen"]["sum"], r["logps_rejected"]["sum"]) for r in scored_records[:plain_count]]
    figures["cli_max_abs_diff"] = max_abs_difference(reference, cli_sums)

    peer_python = ROOT / ".venv-bench" / "bin" / "python"
    if args.peer_trl and peer_python.exists():
        peer_json = workdir / "trl.json"
        subprocess.run([str(peer_python), str(Path(__file__).with_name("peer_trl.py")), "--pairs", str(args.pairs),
                        "--threads", str(args.threads), "--hidden-size", str(args.hidden_size), "--layers",
                        str(args.layers), "--max-length", str(args.max_length), "--batch-size", str(args.batch_size),
                        "--json", str(peer_json)], check=True, stdout=subprocess.DEVNULL)
        figures["trl"] = json.loads(peer_json.read_text())

    finish(figures, args, ("batched_no_reuse", "batched_reuse", "batched_default", "cli"))


def finish(figures: dict, args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Add each variant's ratio to the plain loop, print the figures and write them to --json."""
    for name in names:
        for unit in ("pairs_per_s", "pairs_per_cpu_s"):
            figures[f"{name}_{unit}_vs_plain"] = figures[f"{name}_{unit}"] / figures[f"plain_loop_{unit}"]
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
