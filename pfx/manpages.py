"""Generate the man pages (``pfx.1``, ``pfx-NAME.1``) from the commands' click help.

Usage::

    python -m pfx.manpages DIR           write DIR/pfx.1 and DIR/pfx-NAME.1
    python -m pfx.manpages --check DIR   exit 1 if a page is missing or stale

A page is built from the command's help text: the first line becomes NAME,
the usage line SYNOPSIS, the paragraphs DESCRIPTION, each option OPTIONS, and
the ``Example:`` block EXAMPLES. Pages carry no date, so the same help always
gives the same bytes and ``--check`` can compare them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from dataclasses import dataclass

import click

from pfx import __version__
from pfx.errors import EXIT_DATAERR, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE

EXIT_STATUSES = (
    (EXIT_OK, "Success."),
    (EXIT_RUNTIME, "Runtime failure: model, network or disk."),
    (EXIT_USAGE, "Usage error: an unknown option, an invalid combination of options, or an input file that does not exist."),
    (EXIT_DATAERR, "Data error: an input record is invalid (under --on-error fail); the message names FILE:LINE."),
    (EXIT_INTERRUPTED, "Interrupted."),
)

# Headings that open the examples block of a help text.
EXAMPLE_HEADINGS = ("Example:", "Examples:")


@dataclass
class HelpText:
    """A click help text split into the parts a man page shows."""

    summary: str
    paragraphs: list[tuple[bool, str]]  # (verbatim, text); verbatim paragraphs follow a \b marker
    examples: list[str]


def split_help(help_text: str) -> HelpText:
    """Split a click help text into its summary line, paragraphs and example lines."""
    text = inspect.cleandoc(help_text or "")
    blocks = [block for block in text.split("\n\n") if block.strip()]
    summary = " ".join(blocks[0].split()) if blocks else ""
    paragraphs: list[tuple[bool, str]] = []
    examples: list[str] = []
    for block in blocks[1:]:
        verbatim = block.startswith("\b")
        body = block.lstrip("\b").strip("\n")
        lines = body.splitlines()
        if lines and lines[0].strip() in EXAMPLE_HEADINGS:
            examples.extend(inspect.cleandoc("\n".join(lines[1:])).splitlines())
            continue
        paragraphs.append((verbatim, body if verbatim else " ".join(body.split())))
    return HelpText(summary, paragraphs, examples)


def escape(text: str) -> str:
    """Escape text for roff: backslashes, hyphens, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def _option_tag(flags: str) -> str:
    # "\:" marks a break point, so a long choice list such as [a|b|c|...] can wrap.
    return ".B " + escape(flags).replace("|", "|\\:")


def _section(title: str) -> list[str]:
    return [f".SH {title}"]


def _verbatim(lines: list[str]) -> list[str]:
    return [".PP", ".nf", ".RS 4", *(escape(line) if line else "" for line in lines), ".RE", ".fi"]


def _paragraphs(paragraphs: list[tuple[bool, str]]) -> list[str]:
    out: list[str] = []
    for verbatim, text in paragraphs:
        if verbatim:
            out += _verbatim(text.splitlines())
        else:
            out += [".PP", escape(text)]
    return out


def _exit_status() -> list[str]:
    out = _section("EXIT STATUS")
    for code, meaning in EXIT_STATUSES:
        out += [".TP", f".B {code}", escape(meaning)]
    return out


def _header(name: str, summary: str) -> list[str]:
    title = name.upper()
    return [
        f'.TH {escape(title)} 1 "" "pfx {__version__}" "pfx manual"',
        *_section("NAME"),
        f"{escape(name)} \\- {escape(summary)}",
    ]


def command_page(name: str, command: click.Command, see_also: list[str], parent: click.Context | None = None) -> str:
    """Render the man page of ``pfx NAME``; ``parent`` is the group's context, whose settings (-h) apply."""
    context = click.Context(command, info_name=name, parent=parent, **command.context_settings)
    help_text = split_help(command.help or "")
    usage = " ".join(command.collect_usage_pieces(context))

    lines = _header(f"pfx-{name}", help_text.summary)
    lines += _section("SYNOPSIS") + [f".B pfx {escape(name)}", escape(usage)]
    lines += _section("DESCRIPTION") + _paragraphs(help_text.paragraphs)

    # Arguments appear in SYNOPSIS; OPTIONS lists the options only.
    options = [param.get_help_record(context) for param in command.get_params(context) if isinstance(param, click.Option)]
    options = [record for record in options if record is not None]
    if options:
        lines += _section("OPTIONS")
        for flags, option_help in options:
            lines += [".TP", _option_tag(flags), escape(" ".join(option_help.split()))]

    if help_text.examples:
        lines += _section("EXAMPLES") + _verbatim(help_text.examples)
    lines += _exit_status()
    lines += _see_also(see_also)
    return _join(lines)


def group_page(group: click.Group, commands: dict[str, str]) -> str:
    """Render ``pfx.1``: the group's help and the list of commands."""
    context = click.Context(group, info_name="pfx", **group.context_settings)
    help_text = split_help(group.help or "")

    lines = _header("pfx", help_text.summary)
    lines += _section("SYNOPSIS") + [".B pfx", "\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIFILE\\fR]..."]
    lines += _section("DESCRIPTION") + _paragraphs(help_text.paragraphs)
    lines += _section("COMMANDS")
    for name, summary in commands.items():
        lines += [".TP", f".B {escape(name)}", f"{escape(summary)} See \\fBpfx\\-{escape(name)}\\fR(1)."]

    options = [param.get_help_record(context) for param in group.get_params(context) if isinstance(param, click.Option)]
    lines += _section("OPTIONS")
    for flags, option_help in (record for record in options if record is not None):
        lines += [".TP", _option_tag(flags), escape(option_help)]

    if help_text.examples:
        lines += _section("EXAMPLES") + _verbatim(help_text.examples)
    lines += _exit_status()
    lines += _see_also([f"pfx-{name}" for name in commands])
    return _join(lines)


def _see_also(pages: list[str]) -> list[str]:
    if not pages:
        return []
    references = [f".BR {escape(page)} (1)," for page in pages]
    references[-1] = references[-1].rstrip(",")
    return _section("SEE ALSO") + references


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def render_pages() -> dict[str, str]:
    """Return {file name: page text} for pfx and every command whose module exists."""
    from pfx.cli import COMMANDS, cli

    context = click.Context(cli, info_name="pfx", **cli.context_settings)
    names = cli.list_commands(context)
    summaries = {name: COMMANDS[name][1] for name in names}
    pages = {"pfx.1": group_page(cli, summaries)}
    for name in names:
        command = getattr(importlib.import_module(COMMANDS[name][0]), "command")
        see_also = ["pfx"] + [f"pfx-{other}" for other in names if other != name]
        pages[f"pfx-{name}.1"] = command_page(name, command, see_also, parent=context)
    return pages


def write_pages(directory: str) -> list[str]:
    """Write every page into ``directory``; return the paths written."""
    os.makedirs(directory, exist_ok=True)
    written = []
    for file_name, text in render_pages().items():
        path = os.path.join(directory, file_name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(path)
    return written


def check_pages(directory: str) -> list[str]:
    """Return one problem per missing, stale or orphaned page in ``directory`` (empty when all match)."""
    pages = render_pages()
    problems = []
    for file_name, text in pages.items():
        path = os.path.join(directory, file_name)
        if not os.path.exists(path):
            problems.append(f"{path}: missing")
            continue
        with open(path, encoding="utf-8") as handle:
            if handle.read() != text:
                problems.append(f"{path}: stale (differs from the command's --help)")
    if os.path.isdir(directory):
        for file_name in sorted(os.listdir(directory)):
            if file_name.startswith("pfx") and file_name.endswith(".1") and file_name not in pages:
                problems.append(f"{os.path.join(directory, file_name)}: no such command any more")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pfx.manpages", description="Generate or check the pfx man pages.")
    parser.add_argument("directory", help="directory of the pages, e.g. man")
    parser.add_argument("--check", action="store_true", help="compare the pages with --help instead of writing them")
    args = parser.parse_args(argv)

    if args.check:
        problems = check_pages(args.directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make man` (python -m pfx.manpages man) and commit the pages", file=sys.stderr)
            return 1
        return 0
    for path in write_pages(args.directory):
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
