"""pfx convert through the CLI: detection, error policy, transforms, styles and the books it keeps."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from conftest import FIXTURES, ROOT, parse_jsonl, to_jsonl
from pfx.manpages import split_help


def summary_of(tmp_path, invoke, args, input=None):
    path = tmp_path / "summary.json"
    result = invoke(["convert", *args, "--summary", str(path)], input=input)
    return result, (json.loads(path.read_text()) if path.exists() else None)


def balanced(summary: dict) -> bool:
    """The books close: every input record is written, rejected, dropped, merged or expanded."""
    counts = summary["counts"]
    dropped = sum(count for name, count in counts.items() if name.startswith("dropped:"))
    # A header-less CSV's first row is read as column names; the reader restores it as data ("added:").
    added = sum(count for name, count in counts.items() if name.startswith("added:"))
    return summary["read"] + added == (summary["written"] + summary["rejected"] + dropped + counts.get("merged", 0)
                               - counts.get("expanded", 0))


def pair(prompt="Q?", chosen="A.", rejected="B.", **extra) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra}


# -- detection -------------------------------------------------------------------


def test_convert_names_detected_format(invoke):
    result = invoke(["convert", str(FIXTURES / "hh_rlhf.jsonl")])
    assert result.exit_code == 0
    assert "input format hh-rlhf" in result.stderr


def test_convert_unknown_shape_lists_formats(invoke):
    result = invoke(["convert"], input='{"text": "hello"}\n')
    assert result.exit_code == 65
    assert "<stdin>: cannot detect the input format" in result.stderr
    assert "llama-factory" in result.stderr
    assert "--from" in result.stderr
    assert result.stdout == ""


def test_convert_ambiguous_shape_is_data_error(invoke, monkeypatch):
    from pfx.formats import load_reader as real_load_reader
    from pfx.formats.axolotl import AxolotlReader

    class Twin(AxolotlReader):
        name = "twin"

    def load_reader(name):
        return Twin() if name == "trl" else real_load_reader(name)

    monkeypatch.setattr("pfx.commands.convert.load_reader", load_reader)
    result = invoke(["convert"], input='{"question": "Q", "chosen": "a", "rejected": "b"}\n')
    assert result.exit_code == 65
    assert "several formats equally well" in result.stderr


def test_convert_empty_input(invoke):
    result = invoke(["convert"], input="")
    assert result.exit_code == 0
    assert result.stdout == ""


def test_convert_explicit_from_skips_detection(invoke):
    result = invoke(["convert", "--from", "axolotl", str(FIXTURES / "axolotl.jsonl")])
    assert result.exit_code == 0
    assert "detected" not in result.stderr
    assert len(result.records) == 3


# -- error policy ------------------------------------------------------------------


def test_convert_bad_json_names_line(invoke):
    result = invoke(["convert", "--from", "pfx"], input=to_jsonl([pair()]) + "{not json\n")
    assert result.exit_code == 65
    assert "<stdin>:2:" in result.stderr
    assert "Traceback" not in result.stderr


def test_convert_bad_record_fails_with_file_line(invoke, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(to_jsonl([pair(), pair(), {"prompt": "Q", "chosen": 3, "rejected": "x"}]))
    result = invoke(["convert", "--from", "pfx", str(path)])
    assert result.exit_code == 65
    assert f"{path}:3: field 'chosen'" in result.stderr
    assert "--on-error skip" in result.stderr


def test_convert_skip_writes_rejects(invoke, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    lines = to_jsonl([pair(), {"prompt": "Q", "chosen": 3, "rejected": "x"}, pair(chosen="C.")])
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx", "--on-error", "skip", "--rejects", str(rejects)],
                                 input=lines)
    assert result.exit_code == 0
    assert len(result.records) == 2
    [reject] = parse_jsonl(rejects.read_text())
    assert reject["line"] == 2
    assert reject["field"] == "chosen"
    assert orjson.loads(reject["raw"]) == {"prompt": "Q", "chosen": 3, "rejected": "x"}
    assert summary["rejected"] == 1
    assert balanced(summary)


def test_convert_target_rejection_names_input_line(invoke, tmp_path):
    # A three-message prompt cannot become Axolotl chatml.intel; the reject names the source line.
    result = invoke(["convert", "--to", "axolotl", str(FIXTURES / "llama_factory.jsonl")])
    assert result.exit_code == 65
    assert "llama_factory.jsonl:3: field 'prompt': chatml.intel accepts one user question" in result.stderr


# -- books and counts ---------------------------------------------------------------


def test_convert_hh_fixture_counts(invoke, tmp_path):
    result, summary = summary_of(tmp_path, invoke, [str(FIXTURES / "hh_rlhf.jsonl")])
    assert result.exit_code == 0
    assert summary["read"] == 5
    assert summary["written"] == 5
    assert summary["counts"]["empty chosen"] == 1
    assert summary["counts"]["multi-turn answers"] == 1
    assert summary["from"] == "hh-rlhf"
    assert "hh_rlhf.jsonl:4: empty chosen" in result.stderr
    assert balanced(summary)


def test_convert_warns_empty_prompt(invoke, tmp_path):
    record = {"chosen": "\n\nHuman: A?\n\nAssistant: B.", "rejected": "\n\nHuman: X?\n\nAssistant: Y."}
    result, summary = summary_of(tmp_path, invoke, ["--from", "hh-rlhf"], input=to_jsonl([record]))
    assert result.records[0]["prompt"] == ""
    assert summary["counts"]["empty prompt"] == 1
    assert "<stdin>:1: empty prompt" in result.stderr


def test_convert_summary_line_on_stderr(invoke):
    result = invoke(["convert", str(FIXTURES / "trl.jsonl"), "--to", "unpaired"])
    assert "pfx convert: read 4, wrote 7; expanded: 3" in result.stderr


def test_convert_quiet(invoke):
    result = invoke(["convert", "--quiet", str(FIXTURES / "hh_rlhf.jsonl")])
    assert result.exit_code == 0
    assert result.stderr == ""


# -- ties and identical answers -------------------------------------------------------


def test_convert_identical_answers_dropped_and_counted(invoke, tmp_path):
    records = [pair(), pair(chosen="Same.", rejected="Same.")]
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx"], input=to_jsonl(records))
    assert len(result.records) == 1
    assert summary["counts"]["identical answers"] == 1
    assert summary["counts"]["dropped: tie"] == 1
    assert "<stdin>:2: identical answers" in result.stderr
    assert balanced(summary)


def test_convert_ties_keep(invoke, tmp_path):
    records = [pair(chosen="Same.", rejected="Same."), pair(score_chosen=3, score_rejected=3)]
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx", "--ties", "keep"], input=to_jsonl(records))
    assert len(result.records) == 2
    assert summary["counts"]["ties kept"] == 2
    assert summary["counts"]["identical answers"] == 1


# -- lists to pairs ----------------------------------------------------------------------

LIST = {"prompt": "Q?", "completions": ["w", "x", "y", "z"], "scores": [1, 4, 2, 3], "id": "L"}


def test_convert_lists_stay_lists_for_pfx(invoke):
    result = invoke(["convert", "--from", "pfx"], input=to_jsonl([LIST]))
    assert result.records == [LIST]


def test_convert_list_best_worst_for_trl(invoke, tmp_path):
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx", "--to", "trl"], input=to_jsonl([LIST]))
    assert result.records == [{"prompt": "Q?", "chosen": "x", "rejected": "w", "score_chosen": 4, "score_rejected": 1,
                               "id": "L"}]
    assert balanced(summary)


def test_convert_pairs_all_expands(invoke, tmp_path):
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx", "--pairs", "all"], input=to_jsonl([LIST]))
    assert len(result.records) == 6
    assert summary["counts"]["expanded"] == 5
    assert balanced(summary)


def test_convert_pairs_adjacent_min_margin(invoke):
    result = invoke(["convert", "--from", "pfx", "--pairs", "adjacent", "--min-margin", "1.5"], input=to_jsonl([LIST]))
    # Adjacent pairs by score: x(4)>z(3)>y(2)>w(1), every margin is 1, so none reaches 1.5.
    assert result.records == []
    assert "dropped: list with no pair: 1" in result.stderr


def test_convert_best_random_seeded(invoke):
    first = invoke(["convert", "--from", "pfx", "--pairs", "best-random", "--seed", "3"], input=to_jsonl([LIST] * 5))
    second = invoke(["convert", "--from", "pfx", "--pairs", "best-random", "--seed", "3"], input=to_jsonl([LIST] * 5))
    assert first.records == second.records
    assert all(record["chosen"] == "x" for record in first.records)


def test_convert_ranked_list(invoke):
    ranked = {"prompt": "Q?", "completions": ["a", "b", "c"], "ranks": [2, 1, 3]}
    result = invoke(["convert", "--from", "pfx", "--to", "trl"], input=to_jsonl([ranked]))
    assert result.records == [{"prompt": "Q?", "chosen": "b", "rejected": "c", "rank_chosen": 1, "rank_rejected": 3}]


def test_convert_list_of_ties(invoke, tmp_path):
    tied = {"prompt": "Q?", "completions": ["a", "b"], "scores": [2, 2]}
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx", "--pairs", "best-worst"], input=to_jsonl([tied]))
    assert result.records == []
    assert summary["counts"]["dropped: list of ties"] == 1
    assert balanced(summary)


# -- prompts ----------------------------------------------------------------------------------


def test_convert_to_prompts_every_kind_once(invoke, tmp_path):
    records = [
        pair("Q1", id=7),
        pair("Q1", "C.", "C."),  # a repeated prompt, and a tie that --ties drop would leave out
        {"prompt": "Q2", "completions": ["x", "y"], "scores": [1, 1]},
        {"prompt": [{"role": "user", "content": "Q3"}], "completion": "z", "label": True},
    ]
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx", "--to", "prompts"], input=to_jsonl(records))
    assert result.exit_code == 0, result.stderr
    assert result.records == [{"prompt": "Q1", "id": 7}, {"prompt": "Q2"},
                              {"prompt": [{"role": "user", "content": "Q3"}]}]
    assert summary["counts"]["dropped: repeated prompt"] == 1
    assert "dropped: tie" not in summary["counts"]
    assert balanced(summary)


def test_convert_to_prompts_runs_start_fresh(invoke):
    # Prompts seen in one run do not carry over to the next one in the same process.
    first = invoke(["convert", "--to", "prompts"], input=to_jsonl([pair("Q1")]))
    second = invoke(["convert", "--to", "prompts"], input=to_jsonl([pair("Q1")]))
    assert first.records == [{"prompt": "Q1"}]
    assert second.records == [{"prompt": "Q1"}]


# -- unpaired ---------------------------------------------------------------------------------


def test_convert_unpair(invoke, tmp_path):
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx", "--unpair"],
                                 input=to_jsonl([pair(score_chosen=5, score_rejected=1, id=1)]))
    assert result.records == [
        {"prompt": "Q?", "completion": "A.", "label": True, "score": 5, "id": 1},
        {"prompt": "Q?", "completion": "B.", "label": False, "score": 1, "id": 1},
    ]
    assert summary["counts"]["expanded"] == 1
    assert balanced(summary)


def test_convert_unpair_needs_unpaired_target(invoke):
    result = invoke(["convert", "--unpair", "--to", "axolotl"], input=to_jsonl([pair()]))
    assert result.exit_code == 2
    assert "--unpair" in result.stderr


def test_convert_unpaired_into_pair_format_rejected(invoke):
    result = invoke(["convert", "--from", "pfx", "--to", "axolotl"],
                    input=to_jsonl([{"prompt": "Q", "completion": "A", "label": True}]))
    assert result.exit_code == 65
    assert "does not accept unpaired records" in result.stderr


# -- styles and chat templates ----------------------------------------------------------------

CONVERSATION = {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 3?"}],
                "chosen": [{"role": "assistant", "content": "5"}], "rejected": [{"role": "assistant", "content": "6"}]}
TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def test_convert_style_conversational(invoke):
    result = invoke(["convert", "--from", "pfx", "--style", "conversational"], input=to_jsonl([pair()]))
    assert result.records == [{"prompt": [{"role": "user", "content": "Q?"}],
                               "chosen": [{"role": "assistant", "content": "A."}],
                               "rejected": [{"role": "assistant", "content": "B."}]}]


def test_convert_style_standard_single_exchange(invoke):
    record = {"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "A."}],
              "rejected": [{"role": "assistant", "content": "B."}], "id": 4}
    result = invoke(["convert", "--from", "pfx", "--style", "standard"], input=to_jsonl([record]))
    assert result.records == [pair(id=4)]


def test_convert_style_standard_needs_template(invoke):
    result = invoke(["convert", "--from", "pfx", "--style", "standard"], input=to_jsonl([CONVERSATION]))
    assert result.exit_code == 65
    assert "--chat-template FILE" in result.stderr


def test_convert_chat_template_renders(invoke, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text(TEMPLATE)
    result = invoke(["convert", "--from", "pfx", "--style", "standard", "--chat-template", str(template)],
                    input=to_jsonl([CONVERSATION]))
    assert result.exit_code == 0
    [record] = result.records
    assert record["prompt"] == "<|system|>Be brief.\n<|user|>2 + 3?\n<|assistant|>"
    # The answer is the rendering of prompt + answer minus the rendering of the prompt.
    assert record["chosen"] == "5\n"
    assert record["rejected"] == "6\n"


def test_convert_chat_template_sandboxed(invoke, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    result = invoke(["convert", "--from", "pfx", "--style", "standard", "--chat-template", str(template)],
                    input=to_jsonl([CONVERSATION]))
    assert result.exit_code == 65
    assert "chat template failed" in result.stderr
    assert "subclasses" not in result.stdout


def test_convert_chat_template_syntax_error_is_usage(invoke, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text("{% for m in messages %}")
    result = invoke(["convert", "--style", "standard", "--chat-template", str(template)], input=to_jsonl([pair()]))
    assert result.exit_code == 2
    assert "--chat-template" in result.stderr


def test_convert_chat_template_needs_standard(invoke, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text(TEMPLATE)
    result = invoke(["convert", "--chat-template", str(template)], input=to_jsonl([pair()]))
    assert result.exit_code == 2
    assert "--style standard" in result.stderr


def test_convert_openai_needs_conversations(invoke):
    result = invoke(["convert", "--from", "pfx", "--to", "openai-preference"], input=to_jsonl([pair()]))
    assert result.exit_code == 65
    assert "--style conversational" in result.stderr


def test_convert_openai_with_standard_style_is_usage(invoke):
    result = invoke(["convert", "--to", "openai-preference", "--style", "standard"], input=to_jsonl([pair()]))
    assert result.exit_code == 2


# -- text fidelity ----------------------------------------------------------------------------------


def test_convert_keeps_emoji_and_non_ascii(invoke):
    result = invoke(["convert", str(FIXTURES / "hh_rlhf.jsonl")])
    assert "Arigatō 🙏 (ありがとう)." in result.stdout
    assert "\\u" not in result.stdout


def test_convert_keeps_trailing_prompt_space(invoke):
    record = pair(prompt="[INST] Which number is even: 3, 8 or 11? [/INST] ", chosen="8 is even.",
                  rejected="$8 is the answer, I think.")
    result = invoke(["convert", "--to", "trl"], input=to_jsonl([record]))
    assert result.records == [record]


def test_convert_multiple_files_and_json_array(invoke, tmp_path):
    array = tmp_path / "lf.json"
    array.write_text(json.dumps([orjson.loads(line) for line in (FIXTURES / "llama_factory.jsonl").read_text().splitlines()]))
    result = invoke(["convert", "--from", "llama-factory", str(array), str(FIXTURES / "llama_factory.jsonl")])
    assert result.exit_code == 0
    assert len(result.records) == 8


def test_convert_output_file_compressed(invoke, tmp_path):
    import gzip

    output = tmp_path / "out.jsonl.gz"
    result = invoke(["convert", str(FIXTURES / "axolotl.jsonl"), "-o", str(output)])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert len(parse_jsonl(gzip.decompress(output.read_bytes()).decode())) == 3


@pytest.mark.parametrize("flag", ["--score", "--label"])
def test_convert_reader_flags_validated(invoke, flag):
    result = invoke(["convert", flag, "nonsense"], input=to_jsonl([pair()]))
    assert result.exit_code == 2


# -- several files, marked ties, merged rows ------------------------------------------------------


def test_convert_detects_each_file(invoke, tmp_path):
    result, summary = summary_of(tmp_path, invoke, [str(FIXTURES / "hh_rlhf.jsonl"), str(FIXTURES / "axolotl.jsonl")])
    assert result.exit_code == 0
    assert "hh_rlhf.jsonl: input format hh-rlhf" in result.stderr
    assert "axolotl.jsonl: input format axolotl" in result.stderr
    assert summary["from"] == "hh-rlhf,axolotl"
    assert summary["written"] == 8


def test_convert_marked_tie_follows_policy(invoke, tmp_path):
    tie = pair(confidence=0.5, meta={"tie": True, "source": "arena"})
    dropped, summary = summary_of(tmp_path, invoke, ["--from", "pfx"], input=to_jsonl([tie, pair()]))
    assert len(dropped.records) == 1
    assert summary["counts"]["dropped: tie"] == 1
    kept = invoke(["convert", "--from", "pfx", "--ties", "keep"], input=to_jsonl([tie]))
    assert kept.records == [tie]
    assert "ties kept: 1" in kept.stderr


def test_convert_books_close_for_merging_reader(invoke, tmp_path, monkeypatch):
    # A reader that folds each two rows into one record, and leaves out rows marked "skip" by policy.
    from pfx.formats import Reader, ReadOptions
    from pfx.formats import load_reader as real_load_reader

    class Folding(Reader):
        name = "folding"
        description = "test reader"

        def detect(self, record):
            return True

        def convert(self, items, options: ReadOptions, reject):
            group = []
            for item in items:
                if item.record.get("skip"):
                    options.counts["dropped: skipped row"] += 1
                    continue
                group.append(item.record["text"])
                if len(group) == 2:
                    yield pair(chosen=group[0], rejected=group[1])
                    group = []

    monkeypatch.setattr("pfx.commands.convert.load_reader",
                        lambda name: Folding() if name == "pfx" else real_load_reader(name))
    rows = [{"text": "a"}, {"text": "b"}, {"skip": True}, {"text": "c"}, {"text": "d"}]
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx"], input=to_jsonl(rows))
    assert len(result.records) == 2
    assert summary["counts"]["merged"] == 2
    assert summary["counts"]["dropped: skipped row"] == 1
    assert balanced(summary)


def reader_fixtures() -> list[str]:
    """Return the fixtures named after a reader module (fixtures/hh_rlhf.jsonl, fixtures/shp.jsonl, ...)."""
    from pfx.formats import READERS

    modules = {module.rsplit(".", 1)[-1] for module in READERS.values()}
    return sorted(path.name for path in FIXTURES.iterdir() if path.is_file()
                  and any(path.stem == module or path.stem.startswith(module + "_") for module in modules))


@pytest.mark.parametrize("fixture", reader_fixtures())
def test_convert_books_close_on_fixture(invoke, tmp_path, fixture):
    result, summary = summary_of(tmp_path, invoke, ["--on-error", "skip", str(FIXTURES / fixture)])
    assert result.exit_code == 0, result.stderr
    assert balanced(summary), summary


# -- help examples ----------------------------------------------------------------------------------


def help_examples(help_text: str) -> list[str]:
    return split_help(help_text).examples


def example_commands() -> list[str]:
    from pfx.cli import cli
    from pfx.commands.convert import command

    return help_examples(command.help) + help_examples(cli.help)


@pytest.mark.parametrize("example", example_commands())
def test_convert_help_example_runs(example):
    # Each example runs from the repository root as written, with `pfx` resolved to this interpreter.
    pfx = f"{sys.executable} -m pfx"
    command = " | ".join(pfx + part.strip()[len("pfx"):] for part in example.split("|"))
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "Traceback" not in result.stderr


def test_convert_prompt_records_restyled(invoke):
    prompts = [{"id": "g1", "prompt": "Name a fruit."}, {"id": "g2", "prompt": "Say hello."}]
    result = invoke(["convert", "--style", "conversational"], input=to_jsonl(prompts))
    assert result.exit_code == 0
    assert result.records[0] == {"id": "g1", "prompt": [{"role": "user", "content": "Name a fruit."}]}


def test_convert_prompt_record_into_trl_rejected(invoke):
    result = invoke(["convert", "--from", "pfx", "--to", "trl"], input=to_jsonl([{"prompt": "Name a fruit."}]))
    assert result.exit_code == 65
    assert "does not accept prompt records" in result.stderr


def test_convert_unpair_expands_lists(invoke):
    result = invoke(["convert", "--from", "pfx", "--unpair"], input=to_jsonl([LIST]))
    assert [(record["completion"], record["label"]) for record in result.records] == [("x", True), ("w", False)]


def test_convert_invalid_reader_output_rejected(invoke, monkeypatch):
    # A reader that builds a record without a prompt: convert rejects it instead of crashing.
    from pfx.formats import Reader
    from pfx.formats import load_reader as real_load_reader

    class Broken(Reader):
        name = "broken"
        description = "test reader"

        def detect(self, record):
            return True

        def convert_record(self, record, options):
            return [{"chosen": "a", "rejected": "b"}]

    monkeypatch.setattr("pfx.commands.convert.load_reader",
                        lambda name: Broken() if name == "pfx" else real_load_reader(name))
    result = invoke(["convert", "--from", "pfx", "--to", "axolotl"], input=to_jsonl([pair()]))
    assert result.exit_code == 65
    assert "<stdin>:1: missing field 'prompt'" in result.stderr


def test_convert_list_identical_completions_are_ties(invoke, tmp_path):
    same_text = {"prompt": "Q?", "completions": ["same", "same", "other"], "scores": [3, 1, 2]}
    result, summary = summary_of(tmp_path, invoke, ["--from", "pfx", "--pairs", "all"], input=to_jsonl([same_text]))
    assert [(record["chosen"], record["rejected"]) for record in result.records] == [("same", "other"), ("other", "same")]
    assert summary["counts"]["tied pairs dropped"] == 1
    assert balanced(summary)


def test_convert_says_when_reading_a_terminal():
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "pfx", "convert"], stdin=follower, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=ROOT)
    os.close(follower)
    os.write(leader, b"\x04")  # Ctrl-D: end of input on the terminal
    _, stderr = process.communicate(timeout=60)
    os.close(leader)
    assert process.returncode == 0
    assert b"reading records from the terminal" in stderr


def test_convert_missing_reader_module_is_usage_error(invoke, monkeypatch):
    monkeypatch.setattr("pfx.commands.convert.available_readers", lambda: ["pfx", "hh-rlhf"])
    result = invoke(["convert", "--from", "shp"], input=to_jsonl([pair()]))
    assert result.exit_code == 2
    assert "--from shp" in result.stderr
    assert "available: pfx, hh-rlhf" in result.stderr


def test_convert_invalid_utf8_is_rejected(invoke):
    result = invoke(["convert", "--from", "pfx", "--on-error", "skip"],
                    input=to_jsonl([pair()]).encode() + b'{"prompt": "\xff", "chosen": "a", "rejected": "b"}\n')
    assert result.exit_code == 0
    assert len(result.records) == 1
    assert "invalid JSON: 1" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_convert_chat_template_matches_transformers(invoke, tiny_model, arch):
    # pfx renders a tokenizer's own chat template file as transformers does, minus the BOS text
    # (pfx has no tokenizer, and the tokenizer adds BOS when it encodes).
    from transformers import AutoTokenizer

    model = tiny_model(arch, "causal-lm")
    tokenizer = AutoTokenizer.from_pretrained(model)
    hh = invoke(["convert", "--quiet", "--style", "conversational", str(FIXTURES / "hh_rlhf.jsonl")]).records
    result = invoke(["convert", "--quiet", "--from", "pfx", "--style", "standard", "--chat-template",
                     str(Path(model) / "chat_template.jinja")], input=to_jsonl(hh))
    assert result.exit_code == 0, result.stderr
    bos = tokenizer.bos_token or ""
    for source, record in zip(hh, result.records):
        prompt = tokenizer.apply_chat_template(source["prompt"], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(source["prompt"] + source["chosen"], tokenize=False)
        assert bos + record["prompt"] == prompt
        assert bos + record["prompt"] + record["chosen"] == full


def writer_names() -> list[str]:
    from pfx.formats import WRITERS

    return list(WRITERS)


@pytest.mark.parametrize("target", writer_names())
@pytest.mark.parametrize("fixture", reader_fixtures())
def test_convert_every_fixture_to_every_format(invoke, tmp_path, fixture, target):
    # Whatever a target cannot hold is rejected with a reason; nothing crashes and the books close.
    rejects = tmp_path / "rejects.jsonl"
    style = "conversational" if target == "openai-preference" else "keep"
    result, summary = summary_of(tmp_path, invoke, ["--to", target, "--style", style, "--on-error", "skip",
                                                    "--rejects", str(rejects), str(FIXTURES / fixture)])
    assert result.exit_code == 0, result.stderr
    assert balanced(summary), summary
    assert all(entry["reason"] for entry in parse_jsonl(rejects.read_text()))


def test_convert_unpair_rejects_kept_tie(invoke):
    records = [pair(chosen="Same.", rejected="Same."), pair()]
    result = invoke(["convert", "--unpair", "--ties", "keep", "--on-error", "skip"], input=to_jsonl(records))
    assert result.exit_code == 0, result
    assert len(result.records) == 2
    assert "tie cannot be unpaired: 1" in result.stderr
