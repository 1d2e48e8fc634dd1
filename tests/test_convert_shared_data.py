"""pfx convert on the real public files: HH-RLHF harmless-base test and LLaMA-Factory's demo data."""

from __future__ import annotations

import gzip
import json

import orjson
import pytest


def convert(invoke, tmp_path, *args):
    summary_path = tmp_path / "summary.json"
    result = invoke(["convert", *args, "--summary", str(summary_path)])
    assert result.exit_code == 0, result.stderr
    return result.records, json.loads(summary_path.read_text())


def source_records(path) -> list[dict]:
    if path.suffix == ".gz":
        return [orjson.loads(line) for line in gzip.open(path)]
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return [orjson.loads(line) for line in path.read_text().splitlines()]


# -- HH-RLHF --------------------------------------------------------------------------


@pytest.fixture
def hh_file(shared_data):
    return shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"


def test_hh_shared_counts(invoke, tmp_path, hh_file):
    records, summary = convert(invoke, tmp_path, str(hh_file))
    assert summary["from"] == "hh-rlhf"
    assert summary["read"] == 2312
    assert summary["written"] == 2312
    assert summary["rejected"] == 0
    assert summary["counts"]["empty chosen"] == 4
    assert summary["counts"]["multi-turn answers"] == 5
    assert "empty prompt" not in summary["counts"]


def test_hh_shared_prompts(invoke, tmp_path, hh_file):
    records, summary = convert(invoke, tmp_path, "--to", "prompts", str(hh_file))
    pairs, _ = convert(invoke, tmp_path, str(hh_file))
    distinct = {orjson.dumps(record["prompt"]) for record in pairs}
    assert summary["read"] == 2312
    assert len(records) == len(distinct)
    assert summary["counts"].get("dropped: repeated prompt", 0) == 2312 - len(distinct)
    assert [record["prompt"] for record in records] == [orjson.loads(key) for key in dict.fromkeys(
        orjson.dumps(record["prompt"]) for record in pairs)]


def test_hh_shared_orientation_and_prompt(invoke, tmp_path, hh_file):
    records, _ = convert(invoke, tmp_path, str(hh_file))
    sources = source_records(hh_file)
    assert len(records) == len(sources)
    for record, source in zip(records, sources):
        assert record["prompt"] + record["chosen"] == source["chosen"]
        assert record["prompt"] + record["rejected"] == source["rejected"]
        assert record["prompt"].endswith("\n\nAssistant:")


def test_hh_shared_special_lines(invoke, tmp_path, hh_file):
    records, _ = convert(invoke, tmp_path, str(hh_file))
    empty_lines = [line for line, record in enumerate(records, 1) if not record["chosen"].strip()]
    assert empty_lines == [87, 517, 926, 1104]
    multi_turn_lines = [line for line, record in enumerate(records, 1)
                        if "\n\nAssistant:" in record["chosen"] or "\n\nAssistant:" in record["rejected"]]
    assert multi_turn_lines == [1255, 1689, 1951, 1953, 2037]


def test_hh_shared_conversational(invoke, tmp_path, hh_file):
    records, summary = convert(invoke, tmp_path, "--style", "conversational", str(hh_file))
    assert summary["written"] == 2312
    assert summary["counts"]["multi-turn answers"] == 5
    sources = source_records(hh_file)
    for record, source in zip(records, sources):
        assert record["prompt"][0]["role"] == "user"
        assert record["prompt"][-1]["role"] == "user"
        assert record["chosen"][0]["role"] == "assistant"
        last_chosen_turn = source["chosen"].rsplit("\n\nAssistant:", 1)[1].strip()
        assert record["chosen"][-1]["content"] == last_chosen_turn


def test_hh_shared_sample_file(invoke, tmp_path, shared_data):
    records, summary = convert(invoke, tmp_path, str(shared_data / "hh-rlhf" / "harmless-base" / "test.first200.jsonl"))
    assert summary["written"] == 200


# -- LLaMA-Factory ----------------------------------------------------------------------

PAIR_FILES = ["dpo_en_demo.json", "dpo_zh_demo.json", "dpo_en_demo.first200.jsonl", "dpo_zh_demo.first200.jsonl"]


@pytest.mark.parametrize("name", PAIR_FILES)
def test_llama_factory_shared_pairs(invoke, tmp_path, shared_data, name):
    path = shared_data / "llama-factory" / "data" / name
    records, summary = convert(invoke, tmp_path, str(path))
    sources = source_records(path)
    assert summary["from"] == "llama-factory"
    assert summary["read"] == len(sources)
    assert summary["written"] == len(sources)
    for record, source in zip(records, sources):
        assert record["chosen"] == [{"role": "assistant", "content": source["chosen"]["value"]}]
        assert record["rejected"] == [{"role": "assistant", "content": source["rejected"]["value"]}]
        assert [message["content"] for message in record["prompt"]] == [turn["value"] for turn in source["conversations"]]


def test_llama_factory_shared_shapes(invoke, tmp_path, shared_data):
    records, _ = convert(invoke, tmp_path, str(shared_data / "llama-factory" / "data" / "dpo_en_demo.json"))
    with_system = [record for record in records if record["prompt"][0]["role"] == "system"]
    multi_turn = [record for record in records if sum(m["role"] == "user" for m in record["prompt"]) > 1]
    assert len(records) == 300
    assert len(with_system) == 80
    assert len(multi_turn) == 106
    assert all(sum(m["role"] == "system" for m in record["prompt"]) <= 1 for record in records)


def test_llama_factory_shared_emoji_kept(invoke, tmp_path, shared_data):
    path = shared_data / "llama-factory" / "data" / "dpo_en_demo.json"
    result = invoke(["convert", str(path)])
    sources = source_records(path)
    astral = [source for source in sources if any(ord(c) > 0xFFFF for c in json.dumps(source, ensure_ascii=False))]
    assert len(astral) == 10
    assert "\U0001F60A" in result.stdout


def test_llama_factory_shared_multi_turn_rejected_by_axolotl(invoke, tmp_path, shared_data):
    path = shared_data / "llama-factory" / "data" / "dpo_en_demo.json"
    result = invoke(["convert", "--to", "axolotl", "--on-error", "skip", "--summary", str(tmp_path / "s.json"), str(path)])
    summary = json.loads((tmp_path / "s.json").read_text())
    assert result.exit_code == 0
    assert summary["written"] == 194
    assert summary["rejected_by_reason"] == {"multi-turn prompt": 106}


@pytest.mark.parametrize("name", ["kto_en_demo.json", "kto_en_demo.first200.jsonl"])
def test_llama_factory_shared_kto(invoke, tmp_path, shared_data, name):
    path = shared_data / "llama-factory" / "data" / name
    records, summary = convert(invoke, tmp_path, str(path))
    sources = source_records(path)
    assert summary["written"] == len(sources)
    for record, source in zip(records, sources):
        assert record["label"] is source["label"]
        assert record["completion"] == source["messages"][-1:]
        assert record["prompt"] == source["messages"][:-1]
    if name == "kto_en_demo.json":
        assert sum(record["label"] for record in records) == 150


def test_llama_factory_shared_v1(invoke, tmp_path, shared_data):
    path = shared_data / "llama-factory" / "data" / "v1_dpo_demo.jsonl"
    records, summary = convert(invoke, tmp_path, str(path))
    sources = source_records(path)
    assert summary["written"] == 10
    for record, source in zip(records, sources):
        assert [m["role"] for m in record["prompt"]] == ["system", "user"]
        assert record["chosen"][0]["content"] == source["chosen_messages"][-1]["content"][0]["value"]
        assert record["rejected"][0]["content"] == source["rejected_messages"][-1]["content"][0]["value"]
        assert record["rejected"][0]["content"].startswith(" ")
        assert not record["chosen"][0]["content"].startswith(" ")


@pytest.mark.parametrize("name", ["dpo_en_demo.json", "dpo_zh_demo.json", "kto_en_demo.json"])
def test_llama_factory_shared_round_trip(invoke, shared_data, name):
    # LLaMA-Factory -> pfx -> LLaMA-Factory gives back the source records exactly.
    path = shared_data / "llama-factory" / "data" / name
    to_pfx = invoke(["convert", "--quiet", str(path)])
    back = invoke(["convert", "--quiet", "--from", "pfx", "--to", "llama-factory"], input=to_pfx.stdout)
    assert back.exit_code == 0, back.stderr
    assert back.records == source_records(path)
