"""Round trips pfx -> FORMAT -> pfx: every record a format can hold comes back field for field."""

from __future__ import annotations

import pytest

from conftest import to_jsonl

SYSTEM = {"role": "system", "content": "Answer in one sentence."}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


STANDARD_PAIR = {"prompt": "Name a planet with rings.", "chosen": "Saturn.", "rejected": "Mercury.", "id": "p1",
                 "score_chosen": 9, "score_rejected": 2, "meta": {"annotator": "a7"}}
CONVERSATIONAL_PAIR = {"prompt": [SYSTEM, user("Why is the sky blue? 🌤")], "chosen": [assistant("Scattering.")],
                       "rejected": [assistant("The ocean, über alles.")], "id": "p2"}
MULTI_TURN_PROMPT_PAIR = {"prompt": [user("I have flour and eggs."), assistant("You could make pancakes."),
                                     user("I have no milk. Still possible?")],
                          "chosen": [assistant("Yes, water works instead of milk.")],
                          "rejected": [assistant("Pancakes need milk, so no.")]}
MULTI_TURN_ANSWER_PAIR = {"prompt": [user("Red fruit?")], "chosen": [assistant("Cherry."), user("More?"), assistant("Plum.")],
                          "rejected": [assistant("Banana."), user("More?"), assistant("Lemon.")]}
STANDARD_UNPAIRED = {"prompt": "Describe a kettle.", "completion": "It boils water.", "label": True, "id": "u1"}
CONVERSATIONAL_UNPAIRED = {"prompt": [SYSTEM, user("Describe a kettle.")], "completion": [assistant("A hat.")],
                           "label": False, "meta": {"source": "invented"}}
LIST_RECORD = {"prompt": "Q?", "completions": ["a", "b", "c"], "scores": [1.5, 3, 2], "id": "l1"}

# format -> records it stores field for field
HELD = {
    "pfx": [STANDARD_PAIR, CONVERSATIONAL_PAIR, MULTI_TURN_ANSWER_PAIR, STANDARD_UNPAIRED, CONVERSATIONAL_UNPAIRED,
            LIST_RECORD],
    "trl": [STANDARD_PAIR, CONVERSATIONAL_PAIR, MULTI_TURN_PROMPT_PAIR, MULTI_TURN_ANSWER_PAIR, STANDARD_UNPAIRED,
            CONVERSATIONAL_UNPAIRED],
    "llama-factory": [STANDARD_PAIR, CONVERSATIONAL_PAIR, MULTI_TURN_PROMPT_PAIR, STANDARD_UNPAIRED,
                      CONVERSATIONAL_UNPAIRED],
    "axolotl": [STANDARD_PAIR, CONVERSATIONAL_PAIR],
    "unpaired": [STANDARD_UNPAIRED, CONVERSATIONAL_UNPAIRED],
}
# format -> (record it cannot hold, words of the reason)
DOUBLE_USER_PAIR = {"prompt": [user("Hi."), user("Are you there?")], "chosen": [assistant("Yes.")],
                    "rejected": [assistant("No.")]}
NOT_HELD = [
    ("llama-factory", MULTI_TURN_ANSWER_PAIR, "one assistant message per answer"),
    ("llama-factory", DOUBLE_USER_PAIR, "expects user and assistant turns to alternate"),
    ("axolotl", MULTI_TURN_PROMPT_PAIR, "one user question"),
    ("axolotl", MULTI_TURN_ANSWER_PAIR, "one assistant message per answer"),
    ("axolotl", STANDARD_UNPAIRED, "does not accept unpaired records"),
    ("openai-preference", MULTI_TURN_ANSWER_PAIR, "one assistant message per answer"),
    ("openai-preference", STANDARD_PAIR, "conversations only"),
]


def round_trip(invoke, target: str, records: list[dict]) -> tuple[list[dict], list[dict]]:
    forward = invoke(["convert", "--from", "pfx", "--to", target], input=to_jsonl(records))
    assert forward.exit_code == 0, forward.stderr
    back = invoke(["convert", "--from", "pfx" if target == "unpaired" else target, "--to", "pfx"],
                  input=forward.stdout)
    assert back.exit_code == 0, back.stderr
    return forward.records, back.records


@pytest.mark.parametrize("target", list(HELD))
def test_roundtrip_keeps_every_field(invoke, target):
    written, back = round_trip(invoke, target, HELD[target])
    assert len(written) == len(HELD[target])
    for original, returned in zip(HELD[target], back):
        assert returned == original


def test_roundtrip_openai_keeps_conversation(invoke):
    records = [CONVERSATIONAL_PAIR, MULTI_TURN_PROMPT_PAIR]
    _, back = round_trip(invoke, "openai-preference", records)
    for original, returned in zip(records, back):
        for field in ("prompt", "chosen", "rejected"):
            assert returned[field] == original[field]


def test_roundtrip_openai_counts_dropped_fields(invoke):
    result = invoke(["convert", "--from", "pfx", "--to", "openai-preference"], input=to_jsonl([CONVERSATIONAL_PAIR]))
    assert "dropped field id: 1" in result.stderr


def test_roundtrip_openai_tools_restored(invoke):
    source = {"input": {"messages": [user("Weather?")], "tools": [{"type": "function"}], "parallel_tool_calls": False},
              "preferred_output": [assistant("Sunny.")], "non_preferred_output": [assistant("No idea.")]}
    pfx = invoke(["convert", "--from", "openai-preference"], input=to_jsonl([source]))
    back = invoke(["convert", "--from", "pfx", "--to", "openai-preference"], input=pfx.stdout)
    assert back.records == [source]


def test_roundtrip_axolotl_conversation_without_system_reads_back_standard(invoke):
    # chatml.intel stores strings, so a (user, assistant) exchange without a system text comes back as strings.
    record = {"prompt": [user("Capital of Peru?")], "chosen": [assistant("Lima.")], "rejected": [assistant("Cusco.")]}
    _, back = round_trip(invoke, "axolotl", [record])
    assert back == [{"prompt": "Capital of Peru?", "chosen": "Lima.", "rejected": "Cusco."}]


def test_roundtrip_pairs_to_unpaired_and_back(invoke):
    written, back = round_trip(invoke, "unpaired", [STANDARD_PAIR])
    assert [record["label"] for record in written] == [True, False]
    assert [record["completion"] for record in back] == ["Saturn.", "Mercury."]
    assert [record["score"] for record in back] == [9, 2]


@pytest.mark.parametrize("target, record, reason", NOT_HELD)
def test_writer_rejects_what_it_cannot_hold(invoke, target, record, reason):
    result = invoke(["convert", "--from", "pfx", "--to", target], input=to_jsonl([record]))
    assert result.exit_code == 65
    assert reason in result.stderr
    assert result.stdout == ""


def test_writer_llama_factory_sharegpt_shape(invoke):
    result = invoke(["convert", "--from", "pfx", "--to", "llama-factory"], input=to_jsonl([CONVERSATIONAL_PAIR]))
    assert result.records == [{
        "conversations": [{"from": "system", "value": "Answer in one sentence."},
                          {"from": "human", "value": "Why is the sky blue? 🌤"}],
        "chosen": {"from": "gpt", "value": "Scattering."},
        "rejected": {"from": "gpt", "value": "The ocean, über alles."},
        "id": "p2",
    }]


def test_writer_axolotl_intel_shape(invoke):
    result = invoke(["convert", "--from", "pfx", "--to", "axolotl"], input=to_jsonl([CONVERSATIONAL_PAIR]))
    assert result.records == [{"system": "Answer in one sentence.", "question": "Why is the sky blue? 🌤",
                               "chosen": "Scattering.", "rejected": "The ocean, über alles.", "id": "p2"}]


def test_writer_openai_shape(invoke):
    result = invoke(["convert", "--from", "pfx", "--to", "openai-preference"], input=to_jsonl([CONVERSATIONAL_PAIR]))
    assert result.records == [{"input": {"messages": CONVERSATIONAL_PAIR["prompt"]},
                               "preferred_output": [assistant("Scattering.")],
                               "non_preferred_output": [assistant("The ocean, über alles.")]}]
