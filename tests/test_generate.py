"""``pfx generate`` against the stub server and, end to end, with a tiny local model."""

from __future__ import annotations

import pytest

from conftest import to_jsonl
from openai_stub import StubServer, generation


@pytest.fixture
def generate(invoke, tmp_path):
    def run(stub, records, *args):
        return invoke(["generate", "--api-base", stub.url, "--model", "policy", "--cache", str(tmp_path / "cache"),
                       *args], input=to_jsonl(records))

    return run


def test_generate_adds_completions(generate):
    with StubServer(generation) as stub:
        result = generate(stub, [{"id": "p1", "prompt": "Name a fruit."}], "-n", "3", "--temperature", "0.7")
    assert result.exit_code == 0, result
    (record,) = result.records
    assert record["id"] == "p1"
    assert len(record["completions"]) == 3
    assert len(set(record["completions"])) == 3
    assert sorted(body["seed"] for body in stub.bodies) == [0, 1, 2]
    assert {body["temperature"] for body in stub.bodies} == {0.7}
    assert stub.bodies[0]["messages"] == [{"role": "user", "content": "Name a fruit."}]
    assert "completions added: 3" in result.stderr


def test_generate_keeps_existing_completions(generate):
    record = {"prompt": "Name a fruit.", "completions": ["Apple."], "scores": [4.0]}
    with StubServer(generation) as stub:
        result = generate(stub, [record], "-n", "2")
    assert result.exit_code == 0, result
    output = result.records[0]
    assert output["completions"][0] == "Apple."
    assert len(output["completions"]) == 3
    assert output["scores"] == [4.0, None, None]
    # Samples are numbered after the existing completion, so a rerun on the output adds new ones.
    assert sorted(body["seed"] for body in stub.bodies) == [1, 2]


def test_generate_rerun_on_output_adds_new_samples(generate):
    with StubServer(generation) as stub:
        first = generate(stub, [{"prompt": "Name a fruit."}], "-n", "2")
        second = generate(stub, first.records, "-n", "2")
    assert second.exit_code == 0, second
    completions = second.records[0]["completions"]
    assert len(completions) == 4
    assert len(set(completions)) == 4


def test_generate_conversation_prompt(generate):
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]
    with StubServer(generation) as stub:
        result = generate(stub, [{"prompt": prompt}], "-n", "1")
    assert result.exit_code == 0, result
    (completion,) = result.records[0]["completions"]
    assert completion[0]["role"] == "assistant"
    assert completion[0]["content"].startswith("completion ")
    assert stub.bodies[0]["messages"] == prompt


def test_generate_repeated_run_is_cached(generate):
    records = [{"prompt": f"Count to {i}."} for i in range(4)]
    with StubServer(generation) as stub:
        first = generate(stub, records, "-n", "2")
        second = generate(stub, records, "-n", "2")
    assert second.exit_code == 0, second
    assert second.records == first.records
    assert sum(stub.received.values()) == 8


def test_generate_rejects_pair_record(generate):
    with StubServer(generation) as stub:
        result = generate(stub, [{"prompt": "Hi", "chosen": "a", "rejected": "b"}])
    assert result.exit_code == 65
    assert "<stdin>:1: a pair record is not accepted here" in result.stderr
    assert stub.bodies == []


def test_generate_needs_model(invoke):
    result = invoke(["generate", "--api-base", "http://127.0.0.1:9/v1"], input=to_jsonl([{"prompt": "Hi"}]))
    assert result.exit_code == 2
    assert "--model is required" in result.stderr


@pytest.mark.slow
def test_generate_local_tiny_model(invoke, tiny_model, tmp_path):
    model = tiny_model("llama")
    records = [{"prompt": "Name a fruit."}, {"prompt": [{"role": "user", "content": "Say hello in French."}]}]
    args = ["generate", "--model", model, "--no-cache", "-n", "2", "--max-new-tokens", "6", "--seed", "3", "--logprobs"]
    first = invoke(args, input=to_jsonl(records))
    second = invoke(args, input=to_jsonl(records))
    assert first.exit_code == 0, first
    assert [len(r["completions"]) for r in first.records] == [2, 2]
    assert isinstance(first.records[0]["completions"][0], str)
    assert first.records[1]["completions"][0][0]["role"] == "assistant"
    assert all(logp < 0 for r in first.records for logp in r["completion_logps"])
    # Same seed, same input: the same samples.
    assert second.records == first.records


def test_generate_records_models_for_judge(invoke, tmp_path):
    """Two models generate for one prompt; the judge then reports the win rate of one of them."""
    from openai_stub import keyword

    with StubServer(generation) as stub:
        first = invoke(["generate", "--api-base", stub.url, "--model", "policy-a", "--cache", str(tmp_path), "-n", "1"],
                       input=to_jsonl([{"prompt": "Name a fruit.", "completions": ["Apple."]}]))
        second = invoke(["generate", "--api-base", stub.url, "--model", "policy-b", "--cache", str(tmp_path), "-n", "1"],
                        input=first.stdout)
    record = second.records[0]
    assert record["meta"]["models"] == [None, "policy-a", "policy-b"]
    assert len(record["completions"]) == 3
    # The stub's completions contain no marker, so mark policy-b's answer as the good one.
    record["completions"][2] = "GOOD " + record["completions"][2]
    summary = tmp_path / "summary.json"
    with StubServer(keyword("GOOD")) as stub:
        judged = invoke(["judge", "--api-base", stub.url, "--model", "judge", "--cache", str(tmp_path),
                         "--win-rate-of", "policy-b", "--summary", str(summary)], input=to_jsonl([record]))
    assert judged.exit_code == 0, judged
    import json

    stats = json.loads(summary.read_text())["judge"]
    assert stats["named_model_win_rate"] == 1.0
    assert stats["named_model_comparisons"] == 2  # against policy-a and against the unnamed first answer
