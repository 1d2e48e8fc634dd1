"""Shared test helpers: run the CLI in-process or as a subprocess, and locate shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
# Public data lies beside the checkout, in CI as in development; never copied into the repo.
SHARED_DATA = ROOT.parent / "shared" / "data"


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict:
    return {"role": "system", "content": text}


def to_jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(orjson.dumps(record).decode() + "\n" for record in records)


@pytest.fixture
def invoke():
    """Run `pfx ARGS` in-process through the real entry point; return (exit code, stdout, stderr)."""

    def run(args: list[str], input: str | bytes | None = None) -> "Result":
        from pfx import cli

        runner = CliRunner()
        result = runner.invoke(_EntryPoint(cli.main), args, input=input, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


class _EntryPoint:
    """Adapt pfx.cli.main (which reads sys.argv) to CliRunner.invoke."""

    # CliRunner.invoke reads the command's name for the program name (click >= 8.2).
    name = "pfx"

    def __init__(self, main):
        self.main_function = main

    def main(self, args=None, prog_name=None, **extra):
        sys.argv = ["pfx", *(args or [])]
        self.main_function()


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def records(self) -> list[dict[str, Any]]:
        return parse_jsonl(self.stdout)

    def __repr__(self) -> str:
        return f"Result(exit_code={self.exit_code}, stderr={self.stderr[-2000:]!r})"


def run_pfx(args: list[str], input: bytes | None = None, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run pfx as a real subprocess (for exit codes, pipes, signals and import checks)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "pfx", *args], input=input, capture_output=True, timeout=timeout,
                          env=env, **kwargs)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"public data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Return a factory: tiny_model(arch="llama", kind="causal-lm", seed=0) -> path of a saved tiny model.

    Models are built once per test session (about 5 s each) and shared.
    """
    built: dict[tuple, str] = {}

    def build(arch: str = "llama", kind: str = "causal-lm", seed: int = 0) -> str:
        key = (arch, kind, seed)
        if key not in built:
            from pfx.tiny import build_tiny_model

            outdir = tmp_path_factory.mktemp(f"tiny-{arch}-{kind}-{seed}")
            built[key] = build_tiny_model(str(outdir), arch=arch, kind=kind, seed=seed)
        return built[key]

    return build
