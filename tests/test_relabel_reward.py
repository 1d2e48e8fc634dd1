"""Tests of `pfx relabel-reward`: hand-computed goal-conditioned records for every option."""

from __future__ import annotations

import importlib.util
import random
import sys

import orjson
import pytest

from conftest import assistant, parse_jsonl, run_pfx, system, to_jsonl, user
from pfx.errors import RecordError
from pfx.relabel import RelabelOptions, Scale, add_goal, format_score, goal_text, load_template, relabel_record

# The authors' system prompt for an overall score of 8, copied from their
# scripts/reward_augmentation.py (shenao-zhang/reward-augmented-preference).
AUTHORS_8 = (
    "You are an assistant that generates responses for the instruction while implicitly achieving the following "
    "target scores (on a scale of 1-10, where 1 is lowest and 10 is highest):\nOverall score: 8."
)
HEADER_1_10 = AUTHORS_8.split("\n")[0]
HEADER_1_5 = HEADER_1_10.replace("1-10", "1-5").replace("10 is highest", "5 is highest")


def goal(score: str, header: str = HEADER_1_10) -> str:
    return f"{header}\nOverall score: {score}."




CONVERSATIONAL = {
    "id": "c1",
    "prompt": [user("Name a primary colour.")],
    "chosen": [assistant("Blue.")],
    "rejected": [assistant("Purple.")],
    "score_chosen": 8,
    "score_rejected": 3,
}

STANDARD = {"prompt": "Say hello in French.", "chosen": "Bonjour.", "rejected": "Hola.", "score_chosen": 9.0,
            "score_rejected": 6.5}


def relabel(invoke, records, *args):
    result = invoke(["relabel-reward", "--order", "grouped", *args], input=to_jsonl(records))
    assert result.exit_code == 0, result
    return result


# -- the relabeling itself ------------------------------------------------------


def test_template_default_is_authors_wording():
    assert goal_text(load_template(None), {"overall": 8}, Scale(1, 10)) == AUTHORS_8


def test_relabel_system_placement_conversational(invoke):
    result = relabel(invoke, [CONVERSATIONAL], "--scale", "1:10")
    assert result.records == [
        {
            "id": "c1",
            "prompt": [system(goal("8")), user("Name a primary colour.")],
            "chosen": [assistant("Blue.")],
            "rejected": [assistant("Purple.")],
            "score_chosen": 8,
            "score_rejected": 3,
            "meta": {"relabel_reward": {"goal": 8, "swapped": False}},
        },
        {
            "id": "c1",
            "prompt": [system(goal("3")), user("Name a primary colour.")],
            "chosen": [assistant("Purple.")],
            "rejected": [assistant("Blue.")],
            "score_chosen": 3,
            "score_rejected": 8,
            "meta": {"relabel_reward": {"goal": 3, "swapped": True}},
        },
    ]
    assert "read 1, wrote 2" in result.stderr


def test_relabel_user_placement_multi_turn(invoke):
    # Every earlier turn stays; the goal goes in front of the first user turn only.
    record = {
        "prompt": [user("I have flour and eggs."), assistant("You could make pancakes."), user("No milk. Still possible?")],
        "chosen": [assistant("Yes, water works.")],
        "rejected": [assistant("No.")],
        "score_chosen": 7,
        "score_rejected": 2,
    }
    kept, swapped = relabel(invoke, [record], "--scale", "1:10", "--placement", "user").records
    assert kept["prompt"] == [
        user(goal("7") + "\n\nI have flour and eggs."),
        assistant("You could make pancakes."),
        user("No milk. Still possible?"),
    ]
    assert swapped["prompt"][0] == user(goal("2") + "\n\nI have flour and eggs.")
    assert swapped["prompt"][1:] == record["prompt"][1:]
    assert swapped["chosen"] == [assistant("No.")]


def test_relabel_user_placement_after_system_turn(invoke):
    record = {**CONVERSATIONAL, "prompt": [system("Answer in one word."), user("Name a primary colour.")]}
    kept, _ = relabel(invoke, [record], "--scale", "1:10", "--placement", "user").records
    assert kept["prompt"] == [system("Answer in one word."), user(goal("8") + "\n\nName a primary colour.")]


def test_relabel_system_placement_merges_existing_system(invoke):
    # One system message at index 0 stays one: the goal goes in front of its text, and the run counts it.
    record = {**CONVERSATIONAL, "prompt": [system("Answer in one word."), user("Name a primary colour.")]}
    result = relabel(invoke, [record], "--scale", "1:10")
    kept, swapped = result.records
    assert kept["prompt"] == [system(goal("8") + "\n\nAnswer in one word."), user("Name a primary colour.")]
    assert swapped["prompt"] == [system(goal("3") + "\n\nAnswer in one word."), user("Name a primary colour.")]
    assert "goal merged into a system message: 2" in result.stderr


@pytest.mark.parametrize("placement", ["system", "user"])
def test_relabel_standard_prompt(invoke, placement):
    kept, swapped = relabel(invoke, [STANDARD], "--scale", "1:10", "--placement", placement).records
    assert kept == {
        "prompt": goal("9") + "\n\nSay hello in French.",
        "chosen": "Bonjour.",
        "rejected": "Hola.",
        "score_chosen": 9.0,
        "score_rejected": 6.5,
        "meta": {"relabel_reward": {"goal": 9.0, "swapped": False}},
    }
    assert swapped == {
        "prompt": goal("6.5") + "\n\nSay hello in French.",
        "chosen": "Hola.",
        "rejected": "Bonjour.",
        "score_chosen": 6.5,
        "score_rejected": 9.0,
        "meta": {"relabel_reward": {"goal": 6.5, "swapped": True}},
    }


def test_relabel_user_placement_without_user_turn(invoke):
    record = {**CONVERSATIONAL, "prompt": [system("Be brief.")]}
    result = invoke(["relabel-reward", "--scale", "1:10", "--placement", "user"], input=to_jsonl([record]))
    assert result.exit_code == 65
    assert "<stdin>:1:" in result.stderr
    assert "--placement user needs a user message" in result.stderr


@pytest.mark.parametrize("value, text", [(8, "8"), (8.0, "8"), (7.5, "7.5"), (1, "1"), (3.25, "3.25")])
def test_format_score_whole_and_fractional(value, text):
    assert format_score(value) == text


def test_relabel_fields_pass_through_in_order(invoke):
    record = {"id": 4, "source": "x", **STANDARD, "meta": {"annotator": "a1"}, "extra": [1]}
    kept, swapped = relabel(invoke, [record], "--scale", "1:10").records
    assert list(kept) == ["id", "source", "prompt", "chosen", "rejected", "score_chosen", "score_rejected", "meta", "extra"]
    assert swapped["meta"] == {"annotator": "a1", "relabel_reward": {"goal": 6.5, "swapped": True}}
    assert swapped["extra"] == [1]


def test_relabel_input_record_unchanged():
    record = orjson.loads(orjson.dumps(CONVERSATIONAL))
    options = RelabelOptions(template=load_template(None), scale=Scale(1, 10))
    relabel_record(record, options, random.Random(0))
    assert record == CONVERSATIONAL


# -- ties -------------------------------------------------------------------------


TIE = {"prompt": "Pick a number.", "chosen": "Four.", "rejected": "Five.", "score_chosen": 6, "score_rejected": 6}


def test_relabel_ties_dropped_by_default(invoke):
    result = relabel(invoke, [TIE, STANDARD], "--scale", "1:10")
    assert [record["prompt"].split("\n\n")[-1] for record in result.records] == ["Say hello in French."] * 2
    assert "ties dropped: 1" in result.stderr
    assert "read 2, wrote 2" in result.stderr


def test_relabel_ties_kept_as_in_paper(invoke):
    # Zhang et al. keep them: one goal, the same prompt, opposite labels.
    result = relabel(invoke, [TIE], "--scale", "1:10", "--ties", "keep")
    kept, swapped = result.records
    assert kept["prompt"] == swapped["prompt"] == goal("6") + "\n\nPick a number."
    assert (kept["chosen"], kept["rejected"]) == ("Four.", "Five.")
    assert (swapped["chosen"], swapped["rejected"]) == ("Five.", "Four.")
    assert "ties kept: 1" in result.stderr


def test_relabel_identical_answers_are_ties(invoke):
    record = {**STANDARD, "rejected": "Bonjour."}
    result = relabel(invoke, [record], "--scale", "1:10")
    assert result.records == []
    assert "ties dropped: 1" in result.stderr


# -- scales -----------------------------------------------------------------------


LIKERT = {"prompt": "Describe a kettle.", "chosen": "It boils water.", "rejected": "A hat.", "score_chosen": 5,
          "score_rejected": 2}


def test_relabel_scale_1_5_stated_in_template(invoke):
    kept, swapped = relabel(invoke, [LIKERT], "--scale", "1:5").records
    assert kept["prompt"] == goal("5", HEADER_1_5) + "\n\nDescribe a kettle."
    assert swapped["prompt"] == goal("2", HEADER_1_5) + "\n\nDescribe a kettle."


def test_relabel_rescale_1_5_to_1_10(invoke):
    # g' = 1 + (g - 1) * 9 / 4: 5 -> 10, 2 -> 3.25, 3 -> 5.5.
    records = [LIKERT, {**LIKERT, "score_chosen": 3}]
    result = relabel(invoke, records, "--scale", "1:5", "--rescale", "1:10")
    goals = [record["meta"]["relabel_reward"]["goal"] for record in result.records]
    assert goals == [10, 5.5, 3.25, 3.25]
    assert result.records[0]["prompt"] == goal("10") + "\n\nDescribe a kettle."
    assert result.records[2]["prompt"] == goal("3.25") + "\n\nDescribe a kettle."
    # Scores keep their source scale; only the goal text is rescaled.
    assert result.records[0]["score_chosen"] == 5


def test_relabel_scale_from_meta(invoke):
    record = {**LIKERT, "meta": {"score_scale": [1, 5]}}
    kept, _ = relabel(invoke, [record]).records
    assert kept["prompt"] == goal("5", HEADER_1_5) + "\n\nDescribe a kettle."


def test_relabel_scale_option_overrides_meta(invoke):
    record = {**LIKERT, "meta": {"score_scale": [1, 5]}}
    result = relabel(invoke, [record], "--scale", "1:10")
    assert result.records[0]["prompt"] == goal("5") + "\n\nDescribe a kettle."
    assert "meta.score_scale overridden by --scale: 1" in result.stderr


def test_relabel_unknown_scale_rejected(invoke):
    result = invoke(["relabel-reward"], input=to_jsonl([LIKERT]))
    assert result.exit_code == 65
    assert "<stdin>:1: the score scale is unknown" in result.stderr
    assert "--scale LOW:HIGH" in result.stderr
    assert "meta.score_scale" in result.stderr
    assert result.stdout == ""


def test_relabel_score_outside_scale_rejected(invoke):
    result = invoke(["relabel-reward", "--scale", "1:5"], input=to_jsonl([CONVERSATIONAL]))
    assert result.exit_code == 65
    assert "field 'score_chosen': 8 is outside the score scale 1..5" in result.stderr


@pytest.mark.parametrize("value", ["10", "1-10", "10:1", "a:b"])
def test_relabel_bad_scale_usage_error(invoke, value):
    result = invoke(["relabel-reward", "--scale", value], input="")
    assert result.exit_code == 2
    assert "--scale" in result.stderr


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["score_chosen", "score_rejected"])
def test_relabel_missing_score_names_field(invoke, missing):
    record = {key: value for key, value in STANDARD.items() if key != missing}
    result = invoke(["relabel-reward", "--scale", "1:10"], input=to_jsonl([record]))
    assert result.exit_code == 65
    assert f"<stdin>:1: missing field '{missing}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_relabel_skip_writes_rejects(invoke, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    bad = {"prompt": "Hi.", "chosen": "Hello.", "rejected": "Bye."}
    result = invoke(["relabel-reward", "--scale", "1:10", "--on-error", "skip", "--rejects", str(rejects)],
                    input=to_jsonl([bad, STANDARD, {"prompt": "only a prompt"}]))
    assert result.exit_code == 0
    assert len(result.records) == 2
    rejected = parse_jsonl(rejects.read_text())
    assert [entry["line"] for entry in rejected] == [1, 3]
    assert rejected[0]["field"] == "score_chosen"
    assert "rejected 2" in result.stderr


def test_relabel_ranked_list_rejected(invoke):
    record = {"prompt": "Rank these.", "completions": ["a", "b"], "ranks": [1, 2]}
    result = invoke(["relabel-reward", "--scale", "1:10"], input=to_jsonl([record]))
    assert result.exit_code == 65
    assert "missing field 'scores'" in result.stderr


# -- list records -------------------------------------------------------------------


LIST = {"id": "l1", "prompt": "Count to three.", "completions": ["1 2 3", "1 3 2", "3"], "scores": [9, 5, 2]}


def test_relabel_list_best_worst(invoke):
    result = relabel(invoke, [LIST], "--scale", "1:10")
    kept, swapped = result.records
    assert (kept["chosen"], kept["rejected"], kept["meta"]["relabel_reward"]["goal"]) == ("1 2 3", "3", 9)
    assert (swapped["chosen"], swapped["rejected"], swapped["meta"]["relabel_reward"]["goal"]) == ("3", "1 2 3", 2)
    assert kept["id"] == "l1"
    assert "lists expanded: 1" in result.stderr


def test_relabel_list_all_pairs_with_tie(invoke):
    # Scores 9, 5, 5: pairs (9,5), (9,5) and the tie (5,5), which --ties drop leaves out.
    record = {**LIST, "scores": [9, 5, 5]}
    result = relabel(invoke, [record], "--scale", "1:10", "--pairs", "all")
    assert len(result.records) == 4
    assert "scored pairs: 3" in result.stderr
    assert "ties dropped: 1" in result.stderr


def test_relabel_list_below_min_margin_counted(invoke):
    result = relabel(invoke, [{**LIST, "scores": [5, 4.5, 4]}], "--scale", "1:10", "--min-margin", "2")
    assert result.records == []
    assert "lists without a pair above --min-margin: 1" in result.stderr


# -- attributes -----------------------------------------------------------------------


def test_relabel_attributes_one_line_each(invoke):
    record = {
        **STANDARD,
        "attribute_scores_chosen": {"helpfulness": 5, "instruction_following": 4.5},
        "attribute_scores_rejected": {"helpfulness": 2, "instruction_following": 4.5},
    }
    del record["score_chosen"], record["score_rejected"]
    kept, swapped = relabel(invoke, [record], "--scale", "1:5", "--attributes", "helpfulness,instruction_following").records
    assert kept["prompt"] == (
        f"{HEADER_1_5}\nHelpfulness score: 5.\nInstruction following score: 4.5.\n\nSay hello in French."
    )
    assert swapped["prompt"] == (
        f"{HEADER_1_5}\nHelpfulness score: 2.\nInstruction following score: 4.5.\n\nSay hello in French."
    )
    assert swapped["attribute_scores_chosen"] == {"helpfulness": 2, "instruction_following": 4.5}
    assert kept["meta"]["relabel_reward"]["goal"] == {"helpfulness": 5, "instruction_following": 4.5}


def test_relabel_attributes_missing_attribute(invoke):
    record = {**STANDARD, "attribute_scores_chosen": {"helpfulness": 5}, "attribute_scores_rejected": {"honesty": 2}}
    result = invoke(["relabel-reward", "--scale", "1:5", "--attributes", "helpfulness"], input=to_jsonl([record]))
    assert result.exit_code == 65
    assert "missing field 'attribute_scores_rejected.helpfulness'" in result.stderr


def test_relabel_attributes_equal_goals_are_ties(invoke):
    scores = {"helpfulness": 3, "honesty": 4}
    record = {**STANDARD, "attribute_scores_chosen": scores, "attribute_scores_rejected": dict(scores)}
    result = relabel(invoke, [record], "--scale", "1:5", "--attributes", "helpfulness,honesty")
    assert result.records == []
    assert "ties dropped: 1" in result.stderr


# -- templates --------------------------------------------------------------------------


def test_relabel_custom_template_with_score(invoke, tmp_path):
    template = tmp_path / "goal.txt"
    template.write_text("Aim for a rating of {score} out of {high}.\n")
    kept, swapped = relabel(invoke, [STANDARD], "--scale", "0:10", "--template", str(template)).records
    assert kept["prompt"] == "Aim for a rating of 9 out of 10.\n\nSay hello in French."
    assert swapped["prompt"] == "Aim for a rating of 6.5 out of 10.\n\nSay hello in French."


def test_relabel_template_without_goal_usage_error(invoke, tmp_path):
    template = tmp_path / "goal.txt"
    template.write_text("Be good.")
    result = invoke(["relabel-reward", "--scale", "1:10", "--template", str(template)], input=to_jsonl([STANDARD]))
    assert result.exit_code == 2
    assert "neither {goals} nor {score}" in result.stderr


def test_relabel_attributes_need_goals_placeholder(invoke, tmp_path):
    template = tmp_path / "goal.txt"
    template.write_text("Score: {score}")
    result = invoke(["relabel-reward", "--scale", "1:5", "--template", str(template), "--attributes", "a,b"], input="")
    assert result.exit_code == 2
    assert "--attributes needs a template with {goals}" in result.stderr


def test_goal_text_braces_in_values_not_expanded():
    assert goal_text("{goals} / {high}", {"{high}": 2}, Scale(1, 3)) == "{high} score: 2. / 3"


# -- order ------------------------------------------------------------------------------


def _scored(n: int) -> list[dict]:
    return [{"id": i, "prompt": f"Question {i}?", "chosen": f"Good {i}.", "rejected": f"Bad {i}.", "score_chosen": 8,
             "score_rejected": 3} for i in range(n)]


def test_relabel_order_grouped_is_authors_order(invoke):
    records = relabel(invoke, _scored(5), "--scale", "1:10").records
    assert [(r["id"], r["meta"]["relabel_reward"]["swapped"]) for r in records] == [
        *[(i, False) for i in range(5)],
        *[(i, True) for i in range(5)],
    ]


def test_relabel_order_interleave_keeps_pairs_adjacent(invoke):
    result = invoke(["relabel-reward", "--scale", "1:10", "--seed", "3"], input=to_jsonl(_scored(40)))
    records = result.records
    assert [r["id"] for r in records] == [i for i in range(40) for _ in range(2)]
    firsts = [records[2 * i]["meta"]["relabel_reward"]["swapped"] for i in range(40)]
    # A seeded coin flip: both orders occur, and the same seed gives the same order.
    assert 0 < sum(firsts) < 40
    again = invoke(["relabel-reward", "--scale", "1:10", "--seed", "3"], input=to_jsonl(_scored(40)))
    assert again.stdout == result.stdout


# -- inference ----------------------------------------------------------------------------


def test_relabel_inference_goal_defaults_to_top(invoke):
    records = [{"id": "p1", "prompt": [user("Name a primary colour.")]}, {"id": "p2", "prompt": "Say hello."}]
    result = invoke(["relabel-reward", "--inference", "--scale", "1:10"], input=to_jsonl(records))
    assert result.exit_code == 0, result
    assert result.records == [
        {"id": "p1", "prompt": [system(goal("10")), user("Name a primary colour.")]},
        {"id": "p2", "prompt": goal("10") + "\n\nSay hello."},
    ]


def test_relabel_inference_matches_training_text(invoke):
    # The inference prompt for goal 8 is the training prompt of a pair whose chosen scored 8.
    training, _ = relabel(invoke, [CONVERSATIONAL], "--scale", "1:10", "--placement", "user").records
    result = invoke(["relabel-reward", "--inference", "--goal", "8", "--scale", "1:10", "--placement", "user"],
                    input=to_jsonl([{"prompt": CONVERSATIONAL["prompt"]}]))
    assert result.records[0]["prompt"] == training["prompt"]


def test_relabel_inference_rescale_states_target_scale(invoke):
    result = invoke(["relabel-reward", "--inference", "--rescale", "1:10"], input=to_jsonl([{"prompt": "Hi."}]))
    assert result.records[0]["prompt"] == goal("10") + "\n\nHi."


def test_relabel_inference_attributes_at_goal(invoke):
    result = invoke(["relabel-reward", "--inference", "--scale", "1:5", "--attributes", "helpfulness,honesty"],
                    input=to_jsonl([{"prompt": "Hi."}]))
    assert result.records[0]["prompt"] == f"{HEADER_1_5}\nHelpfulness score: 5.\nHonesty score: 5.\n\nHi."


def test_relabel_goal_needs_inference(invoke):
    result = invoke(["relabel-reward", "--goal", "10", "--scale", "1:10"], input="")
    assert result.exit_code == 2
    assert "--goal sets the goal of --inference" in result.stderr


def test_relabel_goal_outside_scale(invoke):
    result = invoke(["relabel-reward", "--inference", "--goal", "11", "--scale", "1:10"], input="")
    assert result.exit_code == 2
    assert "--goal 11 is outside" in result.stderr


def test_relabel_twice_rejected(invoke):
    once = relabel(invoke, [STANDARD], "--scale", "1:10").records
    again = invoke(["relabel-reward", "--scale", "1:10"], input=to_jsonl(once))
    assert again.exit_code == 65
    assert "already contains a goal text" in again.stderr
    # Without meta the template's opening in the prompt still gives it away.
    stripped = [{key: value for key, value in record.items() if key != "meta"} for record in once]
    inference = invoke(["relabel-reward", "--inference", "--scale", "1:10"], input=to_jsonl(stripped))
    assert inference.exit_code == 65
    assert "already contains a goal text" in inference.stderr


# -- library edges ---------------------------------------------------------------------------


def test_add_goal_never_mutates_prompt():
    prompt = [user("Hi.")]
    new, merged = add_goal(prompt, "GOAL", "user")
    assert prompt == [user("Hi.")]
    assert new == [user("GOAL\n\nHi.")]
    assert merged is False


def test_relabel_reversed_scores_kept_and_counted(invoke):
    record = {**STANDARD, "score_chosen": 2, "score_rejected": 7}
    result = relabel(invoke, [record], "--scale", "1:10")
    assert [r["meta"]["relabel_reward"]["goal"] for r in result.records] == [2, 7]
    assert "rejected score above chosen: 1" in result.stderr


def test_relabel_min_margin_on_pairs(invoke):
    close = {**STANDARD, "score_chosen": 7, "score_rejected": 6.5}
    result = relabel(invoke, [close, STANDARD], "--scale", "1:10", "--min-margin", "1")
    assert len(result.records) == 2
    assert "below --min-margin: 1" in result.stderr


def test_relabel_record_error_names_field():
    options = RelabelOptions(template=load_template(None), scale=Scale(1, 10))
    with pytest.raises(RecordError) as error:
        relabel_record({"prompt": "x", "chosen": "a", "rejected": "b", "score_chosen": "high", "score_rejected": 1},
                       options, random.Random(0))
    assert error.value.field == "score_chosen"


# -- no torch -----------------------------------------------------------------------------------


def test_relabel_imports_no_torch(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(to_jsonl([STANDARD]))
    code = (
        "import sys\n"
        "from pfx.cli import main\n"
        f"sys.argv = ['pfx', 'relabel-reward', '--scale', '1:10', '-o', {str(tmp_path / 'out.jsonl')!r}, {str(data)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = run_python(code)
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert len(parse_jsonl((tmp_path / "out.jsonl").read_text())) == 2


def run_python(code: str):
    import subprocess

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)


# -- real data through convert ----------------------------------------------------------------------


CONVERT_EXISTS = importlib.util.find_spec("pfx.commands.convert") is not None


@pytest.mark.skipif(not CONVERT_EXISTS, reason="pfx convert is not written yet")
@pytest.mark.parametrize("source", ["llama-factory/data/dpo_en_demo.json", "hh-rlhf/harmless-base/test.jsonl.gz"])
def test_relabel_converted_real_data_doubles(shared_data, tmp_path, source):
    converted = run_pfx(["convert", str(shared_data / source)])
    assert converted.returncode == 0, converted.stderr.decode()[-2000:]
    pairs = parse_jsonl(converted.stdout.decode())
    assert len(pairs) > 100
    # A stand-in score field: whole and half scores on 1..10, with a tie in every sixth pair.
    for index, pair in enumerate(pairs):
        pair["score_chosen"] = 5 + index % 3
        pair["score_rejected"] = 5 + (index % 2) * 0.5
    ties = sum(1 for pair in pairs if pair["score_chosen"] == pair["score_rejected"] or pair["chosen"] == pair["rejected"])
    assert ties > 0
    scored = tmp_path / "scored.jsonl"
    scored.write_text(to_jsonl(pairs))
    result = run_pfx(["relabel-reward", "--scale", "1:10", str(scored)])
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    records = parse_jsonl(result.stdout.decode())
    assert len(records) == 2 * (len(pairs) - ties)
    assert f"ties dropped: {ties}" in result.stderr.decode()


# -- help ---------------------------------------------------------------------------------------------


def test_relabel_help_examples_run():
    from help_examples import run_help_examples
    from pfx.commands.relabel_reward import command

    results = run_help_examples(command)
    assert len(results) >= 3
    for result in results:
        assert parse_jsonl(result.stdout.decode())
