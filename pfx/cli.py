"""The ``pfx`` command group.

Commands load lazily: ``pfx --help`` reads the one-line summaries below and
imports no command module, and a data command never imports torch. To add a
command, write ``pfx/commands/NAME.py`` with a click command and add one line
to ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from pfx import __version__
from pfx.errors import EXIT_INTERRUPTED, PfxError

# name -> (module, one-line summary shown by `pfx --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("pfx.commands.convert", "Convert public feedback formats to pfx records and back."),
    "stats": ("pfx.commands.stats", "Describe a dataset: counts, ties, lengths, length bias, agreement."),
    "relabel-reward": ("pfx.commands.relabel_reward", "Turn scored pairs into goal-conditioned pairs (reward-augmented data)."),
    "label": ("pfx.commands.label", "Label candidates as preference pairs with a policy or a reward model."),
    "score": ("pfx.commands.score", "Add reward-model scores, log-probs or implicit rewards to records."),
    "generate": ("pfx.commands.generate", "Sample completions for prompts from a local model or a server."),
    "judge": ("pfx.commands.judge", "Judge pairs with an LLM in both answer orders."),
    "train-dpo": ("pfx.commands.train_dpo", "Train a policy with a DPO-family loss."),
    "plot": ("pfx.commands.plot", "Plot training metrics, stats, lengths or scores to a PNG."),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _) in COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _module_exists(COMMANDS[name][0]):
            return None
        module = importlib.import_module(COMMANDS[name][0])
        return getattr(module, "command")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    path = os.path.join(os.path.dirname(__file__), *module.split(".")[1:]) + ".py"
    return os.path.exists(path)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pfx")
def cli() -> None:
    """Small Unix-style commands for preference-alignment data and training.

    Every command reads JSONL records from files or stdin and writes JSONL
    records to stdout (or -o FILE); logs and the summary go to stderr.

    \b
    Example:
      pfx convert fixtures/hh_rlhf.jsonl | pfx stats
    """


def main() -> None:
    """Run the CLI: pfx errors become one line on stderr and their exit code."""
    stdout = sys.stdout
    try:
        cli.main(standalone_mode=False, prog_name="pfx")
    except SystemExit as exc:
        # click (checked in 8.5.1) catches a broken pipe itself: it swaps sys.stdout for a wrapper
        # that ignores the failed flush and exits 1. A closed reader is not an error, so exit 0.
        if sys.stdout is not stdout and exc.code == 1:
            sys.exit(0)
        raise
    except click.exceptions.Abort:
        _report_interrupt()
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PfxError as exc:
        _flush_stdout_quietly()
        command = _command_name()
        print(f"pfx {command}: error: {exc}" if command else f"pfx: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # `pfx convert big.jsonl | head`: the reader is gone, which is not an error.
        _silence_stdout()
        sys.exit(0)
    except KeyboardInterrupt:
        _report_interrupt()
    _flush_stdout_quietly()


# The resume hint of each command that can go on after an interrupt.
RESUME_HINTS = {
    "score": "the records already written to -o FILE are kept; run the same command with --resume to go on",
    "train-dpo": "the checkpoints in OUTDIR are kept; run the same command with --resume to go on",
    "judge": "completed requests are cached; run the same command again to go on without repeating them",
    "generate": "completed requests are cached; run the same command again to go on without repeating them",
}


def _report_interrupt() -> None:
    command = _command_name()
    hint = RESUME_HINTS.get(command)
    if command == "score" and not any(arg in ("-o", "--output") or arg.startswith("--output=") for arg in sys.argv):
        hint = "the records went to standard output, so --resume cannot pick them up; give -o FILE to be able to resume"
    prefix = f"pfx {command}" if command else "pfx"
    print(f"{prefix}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def _command_name() -> str:
    for arg in sys.argv[1:]:
        if arg in COMMANDS:
            return arg
    return ""


def _flush_stdout_quietly() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(0)


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())

