"""The man pages: generated from each command's click help, committed in man/, and kept current."""

from __future__ import annotations

import shutil
import subprocess
import sys

import click
import pytest

from conftest import ROOT
from pfx import manpages

HELP = """Frobnicate records.

    Reads records and frobnicates them.
    Twice if asked.

    \b
    Example:
      pfx frob in.jsonl > out.jsonl
      pfx frob --twice .hidden.jsonl
    """


@click.command(help=HELP)
@click.option("--twice", is_flag=True, help="Frobnicate twice.")
@click.argument("files", nargs=-1)
def frob(twice: bool, files: tuple[str, ...]) -> None:
    pass


def test_split_help_summary():
    assert manpages.split_help(HELP).summary == "Frobnicate records."


def test_split_help_paragraph_joined():
    assert manpages.split_help(HELP).paragraphs == [(False, "Reads records and frobnicates them. Twice if asked.")]


def test_split_help_examples():
    assert manpages.split_help(HELP).examples == ["pfx frob in.jsonl > out.jsonl", "pfx frob --twice .hidden.jsonl"]


def test_escape_roff_specials():
    assert manpages.escape("a-b\\c") == "a\\-b\\ec"
    assert manpages.escape(".hidden") == "\\&.hidden"
    assert manpages.escape("'quoted") == "\\&'quoted"


def test_command_page_sections():
    page = manpages.command_page("frob", frob, ["pfx"])
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "EXIT STATUS", "SEE ALSO"):
        assert f"\n.SH {heading}\n" in page
    assert "pfx\\-frob \\- Frobnicate records." in page
    assert "\\-\\-twice" in page
    assert "pfx frob \\-\\-twice .hidden.jsonl" in page
    assert ".B 65\n" in page


def test_command_page_keeps_example_out_of_description():
    page = manpages.command_page("frob", frob, ["pfx"])
    description = page.split(".SH DESCRIPTION")[1].split(".SH OPTIONS")[0]
    assert "Example" not in description


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_pages_render_without_groff_warnings(tmp_path):
    manpages.write_pages(str(tmp_path))
    for page in sorted(tmp_path.iterdir()):
        # Every warning except "break", which notes lines that cannot be justified (long choice lists).
        result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-Wbreak", "-z", str(page)], capture_output=True,
                                text=True)
        assert result.stderr == "", page.name


def test_check_reports_missing_and_stale(tmp_path):
    manpages.write_pages(str(tmp_path))
    assert manpages.check_pages(str(tmp_path)) == []

    (tmp_path / "pfx.1").write_text("stale\n")
    (tmp_path / "pfx-gone.1").write_text("old\n")
    problems = manpages.check_pages(str(tmp_path))
    assert any("pfx.1: stale" in problem for problem in problems)
    assert any("pfx-gone.1: no such command" in problem for problem in problems)

    (tmp_path / "pfx.1").unlink()
    assert any("pfx.1: missing" in problem for problem in manpages.check_pages(str(tmp_path)))


def test_check_exit_code(tmp_path):
    command = [sys.executable, "-m", "pfx.manpages", "--check", str(tmp_path)]
    assert subprocess.run(command, capture_output=True).returncode == 1
    subprocess.run([sys.executable, "-m", "pfx.manpages", str(tmp_path)], check=True, capture_output=True)
    assert subprocess.run(command, capture_output=True).returncode == 0


def test_committed_pages_are_current():
    problems = manpages.check_pages(str(ROOT / "man"))
    assert problems == [], "man pages are stale: run `make man` and commit man/"


def test_command_page_lists_options_not_arguments():
    page = manpages.command_page("frob", frob, ["pfx"])
    options = page.split(".SH OPTIONS")[1].split(".SH EXAMPLES")[0]
    assert "[FILES]" not in options
    assert "[FILES]" in page.split(".SH SYNOPSIS")[1].split(".SH DESCRIPTION")[0]
