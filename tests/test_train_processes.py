"""pfx train-dpo as real processes: a SIGKILL and resume, and two-process DDP on CPU."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, parse_jsonl, run_pfx

torch = pytest.importorskip("torch")

PAIRS = str(FIXTURES / "train" / "pairs.jsonl")


def weights(outdir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(outdir / "model.safetensors"))


def common(model: str, cache: Path) -> list[str]:
    return ["train-dpo", "--model", model, "--lr", "1e-3", "--ref-cache", str(cache), "--device", "cpu"]


def test_checkpoint_temporary_dir_ignored(tmp_path):
    from pfx.train.checkpoint import latest_checkpoint

    root = tmp_path / "checkpoints"
    (root / "step-00000004").mkdir(parents=True)
    (root / ".tmp-step-00000006").mkdir()
    (root / ".tmp-step-00000006" / "trainable.safetensors").write_bytes(b"torn")
    assert latest_checkpoint(str(tmp_path)) == str(root / "step-00000004")


@pytest.mark.slow
def test_train_sigkill_resume_same_weights(tiny_model, tmp_path):
    model = tiny_model("llama")
    args = common(model, tmp_path / "cache") + ["--batch-size", "2", "--max-steps", "20", "--save-every", "4", PAIRS]

    # The uninterrupted run.
    full = tmp_path / "full"
    done = run_pfx(args + ["-o", str(full)])
    assert done.returncode == 0, done.stderr.decode()

    # The same run, killed with SIGKILL as soon as its first checkpoint exists.
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "pfx", *args, "-o", str(killed)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints").is_dir() or not any(
            name.startswith("step-") for name in os.listdir(killed / "checkpoints")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model.safetensors").exists()

    resumed = run_pfx(args + ["-o", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr.decode()
    steps = [line["step"] for line in parse_jsonl(resumed.stdout.decode())]
    assert steps[0] > 1
    assert steps[-1] == 20
    expected, actual = weights(full), weights(killed)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_train_ddp_two_processes_match_one(tiny_model, tmp_path):
    model = tiny_model("llama")
    single = tmp_path / "single"
    one_process = run_pfx(common(model, tmp_path / "cache-one") + ["--batch-size", "4", "--max-steps", "3",
                                                                   "-o", str(single), PAIRS])
    assert one_process.returncode == 0, one_process.stderr.decode()

    # Two processes with half the batch each: the same effective batch of 4.
    double = tmp_path / "double"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    two_processes = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), "-m", "pfx", *common(model, tmp_path / "cache-two"),
         "--batch-size", "2", "--max-steps", "3", "-o", str(double), PAIRS],
        capture_output=True, timeout=300, env=env)
    assert two_processes.returncode == 0, two_processes.stderr.decode()[-3000:]

    one_metrics = parse_jsonl(one_process.stdout.decode())
    two_metrics = parse_jsonl(two_processes.stdout.decode())
    assert [m["step"] for m in two_metrics] == [1, 2, 3]  # only rank 0 writes metrics
    for first, second in zip(one_metrics, two_metrics):
        assert second["loss"] == pytest.approx(first["loss"], abs=1e-5)
        assert second["rewards/margins"] == pytest.approx(first["rewards/margins"], abs=1e-5)
        assert second["examples"] == first["examples"] == 4
    expected, actual = weights(single), weights(double)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=5e-5, rtol=0)
    shutil.rmtree(tmp_path / "cache-two")
