"""``pfx judge`` end to end against the OpenAI-compatible stub server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from conftest import parse_jsonl, to_jsonl
from openai_stub import StubServer, answers_in, first_position, keyword, longer_answer, malformed, scores

SYNONYM = [{"id": "q1", "prompt": "Give a synonym for 'quick'.", "chosen": "fast",
            "rejected": "rapid, speedy, or swift, depending on the sentence"}]


def _pairs(count: int, good_side: str = "chosen") -> list[dict]:
    other = "rejected" if good_side == "chosen" else "chosen"
    return [{"id": f"p{i}", "prompt": f"What is {i} + {i}?", good_side: f"GOOD {2 * i}", other: f"{2 * i + 1}"}
            for i in range(count)]


@pytest.fixture
def judge(invoke, tmp_path):
    """Run ``pfx judge`` against a stub with a script; return (result, summary, stub)."""

    def run(script, records, *args, api_key=None):
        summary_path = tmp_path / "summary.json"
        with StubServer(script, api_key=api_key) as stub:
            result = invoke(["judge", "--api-base", stub.url, "--model", "stub-judge", "--cache", str(tmp_path / "cache"),
                             "--backoff", "0", "--summary", str(summary_path), *args], input=to_jsonl(records))
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
        return result, summary, stub

    return run


def test_judge_always_first_is_inconsistent(judge):
    """A judge that always picks the answer shown first: 1 pair, 1 inconsistent, first position 100%."""
    result, summary, _ = judge(first_position, SYNONYM)
    assert result.exit_code == 0, result
    (record,) = result.records
    assert record["judge"]["winner"] == "tie"
    assert record["judge"]["consistent"] is False
    assert [v["order"] for v in record["judge"]["verdicts"]] == ["AB", "BA"]
    stats = summary["judge"]
    assert stats["comparisons"] == 1
    assert stats["compared_both_orders"] == 1
    assert stats["consistent"] == 0
    assert stats["flip_rate"] == 1.0
    assert stats["first_position_rate"] == 1.0
    assert "consistent 0/1" in result.stderr


def test_judge_swap_moves_answers(judge):
    """The BA request really shows the rejected answer as A and the chosen one as B."""
    result, _, stub = judge(first_position, SYNONYM)
    assert result.exit_code == 0, result
    shown = [answers_in(body) for body in stub.bodies]
    assert {"A": "fast", "B": SYNONYM[0]["rejected"]} in shown
    assert {"A": SYNONYM[0]["rejected"], "B": "fast"} in shown
    assert len(shown) == 2


def test_judge_consistent_winner_and_agreement(judge):
    result, summary, _ = judge(keyword("GOOD"), _pairs(3))
    assert result.exit_code == 0, result
    assert [r["judge"]["winner"] for r in result.records] == ["chosen"] * 3
    assert all(r["judge"]["consistent"] is True for r in result.records)
    assert all(r["judge"]["entropy"] == 0.0 for r in result.records)
    assert summary["judge"]["agreement"] == 1.0
    assert summary["judge"]["win_rate"] == 1.0
    assert summary["judge"]["first_position_rate"] == 0.5


def test_judge_relabel_swaps_pair(judge):
    records = [{**pair, "score_chosen": 1.0, "score_rejected": 2.0, "confidence": 0.75} for pair in _pairs(2, "rejected")]
    result, summary, _ = judge(keyword("GOOD"), records, "--relabel")
    assert result.exit_code == 0, result
    for record, original in zip(result.records, records):
        assert record["chosen"] == original["rejected"]
        assert record["rejected"] == original["chosen"]
        assert record["score_chosen"] == 2.0
        assert record["confidence"] == 0.25
        assert record["judge"]["winner"] == "chosen"
        assert record["judge"]["swapped"] is True
        # After the swap, AB still means "the output's chosen answer shown as A".
        ab = next(v for v in record["judge"]["verdicts"] if v["order"] == "AB")
        assert ab["winner"] == "A"
    assert summary["judge"]["agreement"] == 0.0
    assert summary["counts"]["pairs swapped"] == 2


def test_judge_parse_failures_are_counted(judge):
    result, summary, _ = judge(malformed, _pairs(2))
    assert result.exit_code == 0, result
    assert len(result.records) == 2
    for record in result.records:
        assert record["judge"]["winner"] is None
        assert record["judge"]["consistent"] is None
        assert all(v["winner"] is None and v["error"] and v["raw"] for v in record["judge"]["verdicts"])
    stats = summary["judge"]
    assert stats["parse_failures"] == 4
    assert stats["parse_failure_rate"] == 1.0
    assert stats["no_verdict"] == 2
    assert stats["first_position_rate"] is None
    assert summary["counts"]["pairs without verdict"] == 2


def test_judge_ties_drop(judge):
    records = [{"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Red."}]
    kept, kept_summary, _ = judge(keyword("GOOD"), records)
    assert kept.records[0]["judge"]["winner"] == "tie"
    assert kept_summary["judge"]["ties"] == 1
    dropped, summary, _ = judge(keyword("GOOD"), records, "--ties", "drop", "--relabel")
    assert dropped.exit_code == 0, dropped
    assert dropped.records == []
    assert summary["counts"]["ties dropped"] == 1


def test_judge_longer_answer_rate(judge):
    result, summary, _ = judge(longer_answer, SYNONYM + _pairs(2))
    assert result.exit_code == 0, result
    assert summary["judge"]["longer_answer_rate"] == 1.0
    assert summary["judge"]["longer_answer_wins"] == 6
    assert result.records[0]["judge"]["winner"] == "rejected"


def test_judge_scores_template(judge):
    result, summary, _ = judge(scores(8, 6), SYNONYM, "--template", "pairwise-scores")
    assert result.exit_code == 0, result
    judged = result.records[0]["judge"]
    assert judged["template"] == "pairwise-scores"
    assert judged["verdicts"][0]["scores"] == {"A": 8.0, "B": 6.0}
    assert judged["winner"] == "tie"
    assert judged["consistent"] is False


def test_judge_samples_are_distinct_requests(judge):
    result, summary, stub = judge(keyword("GOOD"), _pairs(1), "--samples", "3")
    assert result.exit_code == 0, result
    assert len(result.records[0]["judge"]["verdicts"]) == 6
    assert len(stub.received) == 6
    assert {body["temperature"] for body in stub.bodies} == {1.0}


def test_judge_orders_one(judge):
    result, summary, stub = judge(first_position, SYNONYM, "--orders", "one")
    assert result.exit_code == 0, result
    judged = result.records[0]["judge"]
    assert [v["order"] for v in judged["verdicts"]] == ["AB"]
    assert judged["consistent"] is None
    assert judged["winner"] == "chosen"
    assert summary["judge"]["compared_both_orders"] == 0


def test_judge_orders_random_is_seeded(judge):
    first, _, _ = judge(first_position, _pairs(6), "--orders", "random")
    second, _, _ = judge(first_position, _pairs(6), "--orders", "random")
    orders = [r["judge"]["verdicts"][0]["order"] for r in first.records]
    assert orders == [r["judge"]["verdicts"][0]["order"] for r in second.records]
    assert set(orders) == {"AB", "BA"}


def test_judge_list_pair_by_pair(judge):
    record = {"id": "l1", "prompt": "What is 2 + 2?", "completions": ["5", "GOOD 4", "22"], "scores": [1, 3, 2]}
    result, summary, _ = judge(keyword("GOOD"), [record])
    assert result.exit_code == 0, result
    judged = result.records[0]["judge"]
    assert [c["pair"] for c in judged["comparisons"]] == [[0, 1], [0, 2], [1, 2]]
    assert [c["winner"] for c in judged["comparisons"]] == [1, "tie", 1]
    assert judged["wins"] == [0.5, 2.0, 0.5]
    assert summary["judge"]["agreement"] == 1.0
    assert summary["judge"]["agreement_n"] == 2


def test_judge_list_relabel_makes_pairs(judge):
    record = {"id": "l1", "prompt": "What is 2 + 2?", "completions": ["5", "GOOD 4", "22"]}
    result, summary, _ = judge(keyword("GOOD"), [record], "--relabel", "--ties", "drop")
    assert result.exit_code == 0, result
    pairs = result.records
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("GOOD 4", "5"), ("GOOD 4", "22")]
    assert all(p["id"] == "l1" and p["judge"]["winner"] == "chosen" for p in pairs)
    assert summary["counts"]["pairs from lists"] == 2


def test_judge_uncertain_out(judge, tmp_path):
    records = SYNONYM + _pairs(3)
    uncertain = tmp_path / "uncertain.jsonl"
    # The always-first judge flips every pair (entropy ln 2); a share of 0.5 sends 2 of 4 to people.
    result, summary, _ = judge(first_position, records, "--uncertain-out", str(uncertain), "--uncertain-share", "0.5")
    assert result.exit_code == 0, result
    routed = parse_jsonl(uncertain.read_text())
    assert [r["id"] for r in routed] == ["q1", "p0"]
    assert len(result.records) == 4
    assert summary["uncertain_written"] == 2


def test_judge_uncertain_skips_certain(judge, tmp_path):
    uncertain = tmp_path / "uncertain.jsonl"
    result, summary, _ = judge(keyword("GOOD"), _pairs(3), "--uncertain-out", str(uncertain))
    assert result.exit_code == 0, result
    assert uncertain.read_text() == ""


def test_judge_reference_template_needs_field(judge):
    result, _, _ = judge(first_position, SYNONYM, "--template", "pairwise-reference")
    assert result.exit_code == 65
    assert "missing field 'reference'" in result.stderr
    assert "<stdin>:1" in result.stderr


def test_judge_reference_template_renders_reference(judge):
    records = [{**SYNONYM[0], "reference": "swift"}]
    result, _, stub = judge(first_position, records, "--template", "pairwise-reference")
    assert result.exit_code == 0, result
    assert "[Start of Reference Answer]\nswift\n" in stub.bodies[0]["messages"][1]["content"]


def test_judge_custom_template_json(judge, tmp_path):
    template = tmp_path / "json-judge.txt"
    template.write_text("name: json-judge\nparser: json\n=== user\nQ: {question}\nA: {answer_a}\nB: {answer_b}\n"
                        'Reply with {"winner": "A"} or {"winner": "B"}.\n')

    def duplicate_keys(body, attempt):
        from openai_stub import Reply
        return Reply('{"winner": "A", "winner": "B"}')

    result, summary, stub = judge(duplicate_keys, SYNONYM, "--template", str(template))
    assert result.exit_code == 0, result
    verdicts = result.records[0]["judge"]["verdicts"]
    assert all("duplicate key 'winner'" in v["error"] for v in verdicts)
    assert result.records[0]["judge"]["template"] == "json-judge"
    assert 'Reply with {"winner": "A"}' in stub.bodies[0]["messages"][0]["content"]


def test_judge_win_rate_of_model(judge):
    records = [{**pair, "meta": {"generator_chosen": "m1", "generator_rejected": "m2"}} for pair in _pairs(2)]
    records += [{**pair, "meta": {"model_chosen": "m2", "model_rejected": "m1"}} for pair in _pairs(2)]
    result, summary, _ = judge(keyword("GOOD"), records, "--win-rate-of", "m1")
    assert result.exit_code == 0, result
    assert summary["judge"]["named_model_win_rate"] == 0.5
    assert summary["judge"]["named_model_comparisons"] == 4


def test_judge_rejects_unpaired_record(judge, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    records = [{"prompt": "Hi", "completion": "Hello", "label": True}] + SYNONYM
    result, summary, _ = judge(first_position, records, "--on-error", "skip", "--rejects", str(rejects))
    assert result.exit_code == 0, result
    assert len(result.records) == 1
    assert summary["rejected"] == 1
    assert "unpaired record is not accepted" in parse_jsonl(rejects.read_text())[0]["reason"]


def test_judge_shard_splits_input(judge):
    first, first_summary, _ = judge(keyword("GOOD"), _pairs(5), "--shard", "0/2")
    second, _, _ = judge(keyword("GOOD"), _pairs(5), "--shard", "1/2")
    assert [r["id"] for r in first.records] == ["p0", "p2", "p4"]
    assert [r["id"] for r in second.records] == ["p1", "p3"]
    assert first_summary["counts"]["in other shards"] == 2


@pytest.mark.parametrize("args, message", [
    (["--api-base", "http://127.0.0.1:9/v1"], "--model is required"),
    (["--model", "m", "--api-base", "ftp://127.0.0.1/v1"], "is not an http:// or https:// URL"),
    (["--model", "m", "--api-base", "http://127.0.0.1:9/v1", "--template", "no-such"], "neither a built-in template"),
    (["--model", "m", "--api-base", "http://127.0.0.1:9/v1", "--uncertain-share", "0.1"], "add --uncertain-out FILE"),
    (["--model", "m", "--api-base", "http://127.0.0.1:9/v1", "--api-key-env", "PFX_TEST_UNSET_KEY"], "is not set"),
    (["--model", "m", "--api-key-env", "X"], "apply only to --backend openai"),
    (["--model", "m", "--api-base", "http://127.0.0.1:9/v1", "--no-cache", "--cache", "d"], "exclude each other"),
])
def test_judge_usage_errors(invoke, args, message, monkeypatch):
    monkeypatch.delenv("PFX_TEST_UNSET_KEY", raising=False)
    result = invoke(["judge", *args], input=to_jsonl(SYNONYM))
    assert result.exit_code == 2
    assert message in result.stderr


def test_judge_list_templates(invoke):
    result = invoke(["judge", "--list-templates"])
    assert result.exit_code == 0
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert names == ["pairwise-reference", "pairwise-scores", "pairwise-verdict-split", "pairwise-verdict"]


ONE_TOKEN_TEMPLATE = """name: one-token
parser: logprob
labels: M=A m=B
=== user
[Question]
{question}

[Start of Answer A]
{answer_a}
[End of Answer A]

[Start of Answer B]
{answer_b}
[End of Answer B]

Reply with the single letter M if Answer A is better, or m if Answer B is better.
"""


def test_judge_logprob_template(judge, tmp_path):
    """A one-token judge read from its top log-probs, with a pull towards the first position."""
    import math

    from openai_stub import Reply

    def one_token(body, attempt):
        shown_first_is_good = "GOOD" in answers_in(body)["A"]
        p_first = 0.9 if shown_first_is_good else 0.3
        top = [{"token": "M", "logprob": math.log(p_first)}, {"token": "m", "logprob": math.log(1 - p_first)},
               {"token": "The", "logprob": -9.0}]
        return Reply("M" if p_first > 0.5 else "m", logprobs=[{"token": "M", "logprob": top[0]["logprob"], "top_logprobs": top}])

    template = tmp_path / "one-token.txt"
    template.write_text(ONE_TOKEN_TEMPLATE)
    result, summary, stub = judge(one_token, _pairs(1), "--template", str(template), "--max-new-tokens", "1")
    assert result.exit_code == 0, result
    judged = result.records[0]["judge"]
    ab, ba = judged["verdicts"]
    assert ab["probability_a"] == pytest.approx(0.9)
    assert ba["probability_a"] == pytest.approx(0.3)
    # Chosen: 0.9 (shown first) and 0.7 (shown second); rejected: 0.1 and 0.3.
    assert judged["winner"] == "chosen"
    assert judged["consistent"] is True
    assert stub.bodies[0]["top_logprobs"] == 5
    assert stub.bodies[0]["max_tokens"] == 1


def test_judge_logprob_template_without_logprobs(judge, tmp_path):
    template = tmp_path / "one-token.txt"
    template.write_text(ONE_TOKEN_TEMPLATE)
    result, summary, _ = judge(first_position, SYNONYM, "--template", str(template))
    assert result.exit_code == 0, result
    assert result.records[0]["judge"]["winner"] is None
    assert summary["judge"]["parse_failure_reasons"] == {"the backend returned no token log-probs for this reply": 2}


def _fair_on_parts(body, attempt):
    """Always pick the first position, unless the answers come in parts; then pick the part with GOOD."""
    from openai_stub import Reply

    user = body["messages"][-1]["content"]
    if "[Answer A, part 1 of" not in user:
        return Reply("The first answer is better.\nVerdict: [[A]]")
    good_in_a = any("GOOD" in block for block in user.split("[Answer ")[1:] if block.startswith("A, part"))
    return Reply(f"Part by part.\nVerdict: [[{'A' if good_in_a else 'B'}]]")


LONG_PAIR = {"id": "s1", "prompt": "What is 2 + 2?", "chosen": "It is four. GOOD reasoning follows. Two and two make four.",
             "rejected": "It is five. Maybe six. Or seven, who knows."}


def test_judge_split_merge_resolves_flip(judge):
    result, summary, stub = judge(_fair_on_parts, [LONG_PAIR], "--split-merge")
    assert result.exit_code == 0, result
    judged = result.records[0]["judge"]
    assert judged["consistent"] is False
    assert judged["split_merge"]["consistent"] is True
    assert judged["split_merge"]["winner"] == "chosen"
    assert judged["winner"] == "chosen"
    split_bodies = [b["messages"][-1]["content"] for b in stub.bodies if "[Answer A, part" in b["messages"][-1]["content"]]
    assert len(split_bodies) == 2
    assert any("[Answer A, part 1 of 3]\nIt is four." in text for text in split_bodies)
    assert any("[Answer B, part 1 of 3]\nIt is four." in text for text in split_bodies)
    assert summary["judge"]["split_merge"] == {"comparisons": 1, "resolved": 1, "replies": 2, "parse_failures": 0}
    # Follow-up replies stay out of the position statistics.
    assert summary["judge"]["first_position_n"] == 2


def test_judge_split_merge_relabel_swaps_follow_up(judge):
    record = {**LONG_PAIR, "chosen": LONG_PAIR["rejected"], "rejected": LONG_PAIR["chosen"]}
    result, _, _ = judge(_fair_on_parts, [record], "--split-merge", "--relabel")
    assert result.exit_code == 0, result
    output = result.records[0]
    assert output["chosen"] == LONG_PAIR["chosen"]
    assert output["judge"]["swapped"] is True
    assert output["judge"]["split_merge"]["winner"] == "chosen"
    ab = next(v for v in output["judge"]["split_merge"]["verdicts"] if v["order"] == "AB")
    assert ab["winner"] == "A"


def test_judge_split_merge_skips_one_sentence(judge):
    result, summary, _ = judge(first_position, SYNONYM, "--split-merge")
    assert result.exit_code == 0, result
    assert result.records[0]["judge"]["winner"] == "tie"
    assert "split_merge" not in result.records[0]["judge"]
    assert summary["counts"]["split-and-merge skipped (an answer has one sentence)"] == 1


def test_judge_split_merge_still_inconsistent(judge):
    result, summary, _ = judge(first_position, [LONG_PAIR], "--split-merge")
    assert result.exit_code == 0, result
    judged = result.records[0]["judge"]
    assert judged["split_merge"]["consistent"] is False
    assert judged["winner"] == "tie"
    assert summary["judge"]["split_merge"]["resolved"] == 0


@pytest.mark.parametrize("args, message", [
    (["--split-merge", "--orders", "one"], "needs --orders both"),
    (["--template", "pairwise-verdict-split"], "use it as --split-template"),
    (["--split-merge", "--split-template", "pairwise-verdict"], "has no {segments} placeholder"),
])
def test_judge_split_merge_usage_errors(invoke, args, message):
    result = invoke(["judge", "--model", "m", "--api-base", "http://127.0.0.1:9/v1", *args], input=to_jsonl(SYNONYM))
    assert result.exit_code == 2
    assert message in result.stderr


def test_judge_identical_answers_tie_without_request(judge):
    records = [{"id": "same", "prompt": "Say hi.", "chosen": "Hi!", "rejected": "Hi!"}] + SYNONYM
    result, summary, stub = judge(first_position, records)
    assert result.exit_code == 0, result
    same = result.records[0]["judge"]
    assert same["winner"] == "tie"
    assert same["verdicts"] == []
    assert same["consistent"] is None
    assert len(stub.bodies) == 2
    assert summary["judge"]["identical_answers"] == 1
    assert summary["judge"]["ties"] == 2


def test_judge_split_merge_on_list_relabel(judge):
    record = {"id": "l2", "prompt": "What is 2 + 2?",
              "completions": [LONG_PAIR["rejected"], LONG_PAIR["chosen"]]}
    result, summary, _ = judge(_fair_on_parts, [record], "--split-merge", "--relabel")
    assert result.exit_code == 0, result
    (pair,) = result.records
    assert pair["chosen"] == LONG_PAIR["chosen"]
    assert pair["rejected"] == LONG_PAIR["rejected"]
    assert pair["judge"]["winner"] == "chosen"
    assert pair["judge"]["split_merge"]["winner"] == "chosen"
    # Completion 1 won, so in the pair's terms AB shows the chosen answer (completion 1) as A.
    ab = next(v for v in pair["judge"]["split_merge"]["verdicts"] if v["order"] == "AB")
    assert ab["winner"] == "A"


def test_judge_failed_swapped_reply_is_no_position(judge):
    """An unparseable reply in the swapped order stays a failure; it is never flipped into a position."""
    from openai_stub import Reply

    def fails_when_swapped(body, attempt):
        if "GOOD" in answers_in(body)["A"]:
            return Reply("Verdict: [[A]]")
        return Reply("I cannot decide.")

    result, summary, _ = judge(fails_when_swapped, _pairs(1))
    assert result.exit_code == 0, result
    judged = result.records[0]["judge"]
    ab, ba = judged["verdicts"]
    assert ab["winner"] == "A"
    assert ba["winner"] is None
    assert judged["winner"] == "chosen"
    assert judged["consistent"] is None
    assert summary["judge"]["parse_failures"] == 1
    assert summary["judge"]["first_position_n"] == 1
    assert summary["judge"]["compared_both_orders"] == 0
