"""Behaviour every command shares: help with an example, data and usage exits, quiet pipes, light imports.

The suite runs over every command in ``pfx.cli.COMMANDS`` whose module exists,
so a new command is checked as soon as its module lands.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_pfx, to_jsonl
from pfx.cli import COMMANDS, _module_exists

EXISTING = [name for name, (module, _) in COMMANDS.items() if _module_exists(module)]


def load_command(name: str):
    return importlib.import_module(COMMANDS[name][0]).command


def param_names(name: str) -> set[str]:
    return {param.name for param in load_command(name).params}


# Record commands read FILE... or stdin with the shared I/O options.
RECORD_COMMANDS = [name for name in EXISTING if "on_error" in param_names(name)]
# Data commands take no model.
DATA_COMMANDS = [name for name in RECORD_COMMANDS if "model_name" not in param_names(name)]
MODEL_COMMANDS = [name for name in RECORD_COMMANDS if "model_name" in param_names(name)]

# Options a command needs before it reads any input (beyond --model for model commands);
# {tmp} is a temporary directory and {model} the tiny causal LM.
REQUIRED_ARGS: dict[str, list[str]] = {
    "label": ["--method", "implicit", "--ref", "{model}"],
    "plot": ["-o", "{tmp}/plot.png"],
    "relabel-reward": ["--scale", "1:10"],
    "score": ["--logps"],
    "train-dpo": ["--output-dir", "{tmp}/model"],
}
# Commands that stream many records to stdout, with arguments and one input record for a large input.
STREAMING: dict[str, tuple[list[str], dict]] = {
    "convert": ([], {"prompt": "Q?", "chosen": "A long enough answer.", "rejected": "B."}),
    "relabel-reward": (["--scale", "1:10"], {"prompt": "Q?", "chosen": "A.", "rejected": "B.", "score_chosen": 8,
                                             "score_rejected": 2}),
}


def required_args(name: str, tmp_path: Path, model: str = "") -> list[str]:
    return [arg.replace("{tmp}", str(tmp_path)).replace("{model}", model) for arg in REQUIRED_ARGS.get(name, [])]


@pytest.mark.parametrize("name", EXISTING)
def test_help_has_example(invoke, name):
    result = invoke([name, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout


@pytest.mark.parametrize("name", EXISTING)
def test_help_summary_is_imperative_line(invoke, name):
    first_line = load_command(name).help.strip().splitlines()[0]
    assert first_line.endswith(".")
    verb = first_line.split()[0]
    assert not (verb.endswith("s") and not verb.endswith("ss")), f"{name}: summary should start with an imperative verb"


@pytest.mark.parametrize("name", DATA_COMMANDS)
def test_bad_json_names_stdin_line(invoke, tmp_path, name):
    good = {"prompt": "Q?", "chosen": "A.", "rejected": "B.", "score_chosen": 8, "score_rejected": 2}
    result = invoke([name, *required_args(name, tmp_path)], input=to_jsonl([good]) + "{not json\n")
    assert result.exit_code == 65
    assert "<stdin>:2:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_COMMANDS)
def test_bad_json_names_stdin_line_model_commands(invoke, tmp_path, tiny_model, name):
    model = tiny_model("llama", "causal-lm")
    result = invoke([name, "--model", model, *required_args(name, tmp_path, model)], input="{not json\n")
    assert result.exit_code == 65
    assert "<stdin>:1:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", DATA_COMMANDS)
def test_missing_input_file_is_usage_error(invoke, tmp_path, name):
    missing = tmp_path / "nope.jsonl"
    result = invoke([name, *required_args(name, tmp_path), str(missing)])
    assert result.exit_code == 2
    assert f"{missing}: file not found; check the path" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_COMMANDS)
def test_missing_input_file_is_usage_error_model_commands(invoke, tmp_path, tiny_model, name):
    model = tiny_model("llama", "causal-lm")
    missing = tmp_path / "nope.jsonl"
    result = invoke([name, "--model", model, *required_args(name, tmp_path, model), str(missing)])
    assert result.exit_code == 2
    assert "file not found" in result.stderr
    assert "LlamaForCausalLM" not in result.stderr  # the check comes before the model loads
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", [name for name in STREAMING if name in EXISTING])
def test_closed_stdout_exits_quietly(tmp_path, name):
    args, record = STREAMING[name]
    big = tmp_path / "big.jsonl"
    big.write_text(to_jsonl([record]) * 50_000)
    command = [sys.executable, "-m", "pfx", name, *args, str(big)]
    pipeline = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_line = pipeline.stdout.readline()
    pipeline.stdout.close()
    stderr = pipeline.stderr.read().decode()
    returncode = pipeline.wait(timeout=60)
    assert first_line.startswith(b"{")
    assert returncode == 0
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr


# Model commands import torch only when they run, so their --help stays as fast as the rest.
@pytest.mark.parametrize("name", EXISTING)
def test_help_imports_no_torch(name):
    code = (
        "import sys\n"
        "from pfx.cli import cli\n"
        "try:\n"
        f"    cli.main([{name!r}, '--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\n"
        "print(','.join(heavy), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    assert "torch" not in imported
    assert "transformers" not in imported


def test_convert_run_imports_no_torch(tmp_path):
    code = (
        "import sys\n"
        "from pfx.cli import main\n"
        f"sys.argv = ['pfx', 'convert', '--quiet', '--to', 'trl', {str(ROOT / 'fixtures' / 'hh_rlhf.jsonl')!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "False False"


IMPORT_TIMER = """
import io, sys, time
from contextlib import redirect_stdout
start = time.perf_counter()
from pfx.cli import cli
args = sys.argv[1:]
with redirect_stdout(io.StringIO()):
    try:
        cli.main(args, standalone_mode=False)
    except SystemExit:
        pass
print(time.perf_counter() - start)
"""


@pytest.mark.parametrize("args", [["--help"], ["convert", "--help"]])
def test_help_import_time(args):
    # Loose bound: the measured figures (well under 0.2 s) are in the benchmark notes.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    timings = []
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", IMPORT_TIMER, *args], capture_output=True, text=True, cwd=ROOT,
                                timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        timings.append(float(result.stdout.strip().splitlines()[-1]))
    assert min(timings) < 1.0


def test_python_m_pfx_runs():
    result = run_pfx(["--help"])
    assert result.returncode == 0
    assert b"convert" in result.stdout
