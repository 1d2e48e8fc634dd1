"""Run the `Example:` lines of a command's help from the repository root, as a reader would type them."""

from __future__ import annotations

import shlex
import subprocess

import click

from conftest import ROOT, run_pfx
from pfx.manpages import split_help


def run_help_examples(command: click.Command) -> list[subprocess.CompletedProcess]:
    """Run every example line of ``command``'s help and return the finished processes, failing on a non-zero exit."""
    examples = split_help(command.help or "").examples
    assert examples, f"{command.name}: the help has no Example block"
    results = []
    for example in examples:
        args = shlex.split(example)
        assert args[0] == "pfx", example
        result = run_pfx(args[1:], cwd=ROOT)
        assert result.returncode == 0, (example, result.stderr.decode()[-1000:])
        results.append(result)
    return results
