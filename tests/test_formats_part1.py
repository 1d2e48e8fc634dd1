"""Readers pfx, hh-rlhf, trl, openai-preference, llama-factory and axolotl, called directly."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import assistant, system, user

from pfx.errors import RecordError
from pfx.formats import ReadOptions, available_readers, load_reader
from pfx.formats.hh_rlhf import split_transcripts
from pfx.formats.messages import split_conversations
from pfx.formats.pipeline import DetectionError, detect_format


def read(name: str, record: dict, **extra) -> list[dict]:
    return list(load_reader(name).convert_record(record, ReadOptions(extra=extra)))




# -- hh-rlhf -------------------------------------------------------------------

GLASS = {
    "chosen": "\n\nHuman: Is glass a liquid?\n\nAssistant: No, it is an amorphous solid.",
    "rejected": "\n\nHuman: Is glass a liquid?\n\nAssistant: Yes, it flows very slowly.",
}


def test_hh_prompt_is_shared_turns():
    [pair] = read("hh-rlhf", GLASS)
    assert pair["prompt"] == "\n\nHuman: Is glass a liquid?\n\nAssistant:"
    assert pair["chosen"] == " No, it is an amorphous solid."
    assert pair["rejected"] == " Yes, it flows very slowly."


def test_hh_never_splits_inside_a_turn():
    # "No" and "Not" share a character prefix; the answers must still be whole turns.
    pair = split_transcripts("\n\nHuman: Hi?\n\nAssistant: No way.", "\n\nHuman: Hi?\n\nAssistant: Not now.")
    assert pair["chosen"] == " No way."
    assert pair["rejected"] == " Not now."


def test_hh_divergent_earlier_turn_keeps_later_turns():
    chosen = "\n\nHuman: Red fruit?\n\nAssistant: A cherry.\n\nHuman: Another?\n\nAssistant: A strawberry."
    rejected = "\n\nHuman: Red fruit?\n\nAssistant: A banana.\n\nHuman: Another?\n\nAssistant: A lemon."
    pair = split_transcripts(chosen, rejected)
    assert pair["prompt"] == "\n\nHuman: Red fruit?\n\nAssistant:"
    assert pair["chosen"] == " A cherry.\n\nHuman: Another?\n\nAssistant: A strawberry."
    assert pair["rejected"] == " A banana.\n\nHuman: Another?\n\nAssistant: A lemon."


def test_hh_prompt_plus_answer_is_transcript():
    chosen = "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant:  D."
    rejected = "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant: E."
    pair = split_transcripts(chosen, rejected)
    assert pair["prompt"] + pair["chosen"] == chosen
    assert pair["prompt"] + pair["rejected"] == rejected
    assert pair["chosen"] == "  D."


def test_hh_conversational_style():
    chosen = "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant: D."
    rejected = "\n\nHuman: A?\n\nAssistant: B.\n\nHuman: C?\n\nAssistant: E."
    [pair] = read("hh-rlhf", {"chosen": chosen, "rejected": rejected}, style="conversational")
    assert pair["prompt"] == [user("A?"), assistant("B."), user("C?")]
    assert pair["chosen"] == [assistant("D.")]
    assert pair["rejected"] == [assistant("E.")]


def test_hh_empty_answer_kept():
    [pair] = read("hh-rlhf", {"chosen": "\n\nHuman: Pick a lock?\n\nAssistant: ", "rejected": "\n\nHuman: Pick a lock?\n\nAssistant: Sure."})
    assert pair["chosen"] == " "
    assert pair["prompt"] == "\n\nHuman: Pick a lock?\n\nAssistant:"


def test_hh_no_shared_turn_gives_empty_prompt():
    pair = split_transcripts("\n\nHuman: A?\n\nAssistant: B.", "\n\nHuman: X?\n\nAssistant: Y.")
    assert pair["prompt"] == ""
    assert pair["chosen"] == "\n\nHuman: A?\n\nAssistant: B."


def test_hh_counts_multi_turn_answers():
    options = ReadOptions()
    chosen = "\n\nHuman: Red fruit?\n\nAssistant: A cherry.\n\nHuman: Another?\n\nAssistant: A strawberry."
    rejected = "\n\nHuman: Red fruit?\n\nAssistant: A banana.\n\nHuman: Another?\n\nAssistant: A lemon."
    list(load_reader("hh-rlhf").convert_record({"chosen": chosen, "rejected": rejected}, options))
    assert options.counts == Counter({"multi-turn answers": 1})


def test_hh_rejects_text_without_turns():
    with pytest.raises(RecordError, match="starting with"):
        read("hh-rlhf", {"chosen": "just text", "rejected": "\n\nHuman: A?\n\nAssistant: B."})


def test_hh_keeps_other_fields():
    [pair] = read("hh-rlhf", {**GLASS, "split": "test"})
    assert pair["split"] == "test"


# -- trl -----------------------------------------------------------------------


def test_trl_explicit_prompt_unchanged():
    record = {"prompt": "Q?", "chosen": "A.", "rejected": "B.", "id": 7}
    assert read("trl", record) == [record]


def test_trl_implicit_prompt_split_at_messages():
    chosen = [system("Brief."), user("2 + 3?"), assistant("5")]
    rejected = [system("Brief."), user("2 + 3?"), assistant("6")]
    [pair] = read("trl", {"chosen": chosen, "rejected": rejected, "id": "x"})
    assert pair == {"prompt": chosen[:2], "chosen": [assistant("5")], "rejected": [assistant("6")], "id": "x"}


def test_trl_implicit_multi_turn_divergence():
    chosen = [user("Hi"), assistant("Hello"), user("More"), assistant("Sure")]
    rejected = [user("Hi"), assistant("Go away"), user("More"), assistant("No")]
    [pair] = read("trl", {"chosen": chosen, "rejected": rejected})
    assert pair["prompt"] == [user("Hi")]
    assert pair["chosen"] == chosen[1:]
    assert pair["rejected"] == rejected[1:]


def test_trl_unpaired():
    record = {"prompt": "Q?", "completion": "A.", "label": False}
    assert read("trl", record) == [record]


def test_trl_rejects_plain_implicit_prompt():
    with pytest.raises(RecordError, match="cannot be split"):
        read("trl", {"chosen": "The answer is 8.", "rejected": "The answer is 9."})


def test_trl_implicit_hh_text_goes_through_turns():
    [pair] = read("trl", GLASS)
    assert pair["prompt"] == "\n\nHuman: Is glass a liquid?\n\nAssistant:"


def test_trl_rejects_string_label():
    with pytest.raises(RecordError, match="label"):
        read("trl", {"prompt": "Q?", "completion": "A.", "label": "true"})


def test_split_conversations_cuts_back_to_assistant():
    # Identical conversations: each answer keeps at least its last assistant message.
    chosen = [user("Hi"), assistant("Hello")]
    prompt, chosen_answer, rejected_answer = split_conversations(chosen, list(chosen))
    assert prompt == [user("Hi")]
    assert chosen_answer == [assistant("Hello")]
    assert rejected_answer == [assistant("Hello")]


# -- openai-preference -----------------------------------------------------------


def test_openai_reads_messages_and_outputs():
    record = {
        "input": {"messages": [system("One sentence."), user("Why blue?")], "tools": [], "parallel_tool_calls": True},
        "preferred_output": [assistant("Scattering.")],
        "non_preferred_output": [assistant("The ocean.")],
    }
    [pair] = read("openai-preference", record)
    assert pair["prompt"] == [system("One sentence."), user("Why blue?")]
    assert pair["chosen"] == [assistant("Scattering.")]
    assert pair["rejected"] == [assistant("The ocean.")]
    assert pair["meta"] == {"openai_input": {"tools": [], "parallel_tool_calls": True}}


def test_openai_text_parts_joined():
    record = {
        "input": {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]},
        "preferred_output": [assistant("Hello")],
        "non_preferred_output": [assistant("Go")],
    }
    assert read("openai-preference", record)[0]["prompt"] == [user("Hi there")]


def test_openai_rejects_missing_input():
    with pytest.raises(RecordError, match="input"):
        read("openai-preference", {"preferred_output": [assistant("a")], "non_preferred_output": [assistant("b")]})


def test_openai_rejects_image_part():
    record = {
        "input": {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        "preferred_output": [assistant("a")],
        "non_preferred_output": [assistant("b")],
    }
    with pytest.raises(RecordError, match="image_url"):
        read("openai-preference", record)


# -- llama-factory ---------------------------------------------------------------


def test_llama_factory_sharegpt_pair():
    record = {"conversations": [{"from": "human", "value": "Planet with rings?"}],
              "chosen": {"from": "gpt", "value": "Saturn."}, "rejected": {"from": "gpt", "value": "Mercury."}}
    [pair] = read("llama-factory", record)
    assert pair == {"prompt": [user("Planet with rings?")], "chosen": [assistant("Saturn.")],
                    "rejected": [assistant("Mercury.")]}


def test_llama_factory_system_turn_kept_once():
    record = {"conversations": [{"from": "system", "value": "Answer in exactly one sentence."},
                                {"from": "human", "value": "Why is the sky blue?"}],
              "chosen": {"from": "gpt", "value": "Air scatters blue light more than red light."},
              "rejected": {"from": "gpt", "value": "Because of the ocean. It reflects. Also clouds."}}
    [pair] = read("llama-factory", record)
    assert pair["prompt"] == [system("Answer in exactly one sentence."), user("Why is the sky blue?")]
    assert sum(message["role"] == "system" for message in pair["prompt"]) == 1


def test_llama_factory_system_column_first():
    record = {"conversations": [{"from": "human", "value": "Hi"}], "system": "Be kind.",
              "chosen": {"from": "gpt", "value": "Hello!"}, "rejected": {"from": "gpt", "value": "What?"}}
    assert read("llama-factory", record)[0]["prompt"] == [system("Be kind."), user("Hi")]


def test_llama_factory_rejects_mid_system_turn():
    record = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
                                {"from": "system", "value": "Now be rude."}, {"from": "human", "value": "Bye"}],
              "chosen": {"from": "gpt", "value": "Bye!"}, "rejected": {"from": "gpt", "value": "Go."}}
    with pytest.raises(RecordError, match="system message is only accepted as the first"):
        read("llama-factory", record)


def test_llama_factory_multi_turn_prompt_kept():
    conversation = [{"from": "human", "value": "I have flour and eggs."}, {"from": "gpt", "value": "You could make pancakes."},
                    {"from": "human", "value": "I have no milk. Still possible?"}]
    record = {"conversations": conversation, "chosen": {"from": "gpt", "value": "Yes, water works instead of milk."},
              "rejected": {"from": "gpt", "value": "Pancakes need milk, so no."}}
    [pair] = read("llama-factory", record)
    assert pair["prompt"] == [user("I have flour and eggs."), assistant("You could make pancakes."),
                              user("I have no milk. Still possible?")]


def test_llama_factory_messages_with_single_answer_messages():
    # The multi-turn example from Axolotl's chat_template.default shape, which LLaMA-Factory also reads.
    record = {"messages": [user("I have flour and eggs."), assistant("You could make pancakes."),
                           user("I have no milk. Still possible?")],
              "chosen": assistant("Yes, water works instead of milk."), "rejected": assistant("Pancakes need milk, so no.")}
    [pair] = read("llama-factory", record)
    assert len(pair["prompt"]) == 3
    assert pair["chosen"] == [assistant("Yes, water works instead of milk.")]


def test_llama_factory_rejects_user_answer():
    record = {"conversations": [{"from": "human", "value": "Hi"}], "chosen": {"from": "human", "value": "x"},
              "rejected": {"from": "gpt", "value": "y"}}
    with pytest.raises(RecordError, match="assistant"):
        read("llama-factory", record)


def test_llama_factory_alpaca_pair():
    record = {"instruction": "Translate to French:", "input": "Good morning", "chosen": "Bonjour", "rejected": "Bonsoir"}
    assert read("llama-factory", record) == [{"prompt": "Translate to French:\nGood morning", "chosen": "Bonjour",
                                              "rejected": "Bonsoir"}]


def test_llama_factory_alpaca_history_and_system():
    record = {"instruction": "And in German?", "input": "", "system": "Translate.", "history": [["Hello in French?", "Bonjour"]],
              "chosen": "Hallo", "rejected": "Hola"}
    [pair] = read("llama-factory", record)
    assert pair["prompt"] == [system("Translate."), user("Hello in French?"), assistant("Bonjour"), user("And in German?")]
    assert pair["chosen"] == [assistant("Hallo")]


def test_llama_factory_kto_messages():
    record = {"messages": [user("Summary?"), assistant("Science.")], "label": False}
    assert read("llama-factory", record) == [{"prompt": [user("Summary?")], "completion": [assistant("Science.")],
                                              "label": False}]


def test_llama_factory_kto_tag_must_be_boolean():
    with pytest.raises(RecordError, match="JSON boolean"):
        read("llama-factory", {"messages": [user("Q"), assistant("A")], "kto_tag": "true"})


def test_llama_factory_alpaca_kto():
    record = {"instruction": "Name a colour.", "input": "", "output": "Blue.", "kto_tag": True}
    assert read("llama-factory", record) == [{"prompt": "Name a colour.", "completion": "Blue.", "label": True}]


def test_llama_factory_v1_pair():
    def message(role: str, text: str, weight: float) -> dict:
        return {"role": role, "content": [{"type": "text", "value": text}], "loss_weight": weight}

    record = {"chosen_messages": [message("system", "Be detailed.", 0.0), message("user", "Translate: mândru", 0.0),
                                  message("assistant", "proud", 1.0)],
              "rejected_messages": [message("system", "Be detailed.", 0.0), message("user", "Translate: mândru", 0.0),
                                    message("assistant", " pride", 1.0)]}
    [pair] = read("llama-factory", record)
    assert pair["prompt"] == [system("Be detailed."), user("Translate: mândru")]
    assert pair["chosen"] == [assistant("proud")]
    assert pair["rejected"] == [assistant(" pride")]


# -- axolotl ---------------------------------------------------------------------


def test_axolotl_intel_without_system_is_standard():
    record = {"system": "", "question": "Capital of Peru?", "chosen": "Lima.", "rejected": "Cusco."}
    assert read("axolotl", record) == [{"prompt": "Capital of Peru?", "chosen": "Lima.", "rejected": "Cusco."}]


def test_axolotl_intel_system_becomes_message():
    record = {"system": "Be careful.", "question": "Spider legs?", "chosen": "Eight.", "rejected": "Six."}
    [pair] = read("axolotl", record)
    assert pair["prompt"] == [system("Be careful."), user("Spider legs?")]
    assert pair["chosen"] == [assistant("Eight.")]


def test_axolotl_argilla():
    record = {"instruction": "Synonym for quick?", "chosen_response": "Fast.", "rejected_response": "Slow.", "id": 3}
    assert read("axolotl", record) == [{"prompt": "Synonym for quick?", "chosen": "Fast.", "rejected": "Slow.", "id": 3}]


def test_axolotl_rejects_non_string():
    with pytest.raises(RecordError, match="question"):
        read("axolotl", {"question": ["a"], "chosen": "b", "rejected": "c"})


# -- pfx -------------------------------------------------------------------------


def test_pfx_reads_list_records():
    record = {"prompt": "Q", "completions": ["a", "b"], "scores": [1, 2]}
    assert read("pfx", record) == [record]


def test_pfx_rejects_invalid_confidence():
    with pytest.raises(RecordError, match="confidence"):
        read("pfx", {"prompt": "Q", "chosen": "a", "rejected": "b", "confidence": 2})


# -- detection -------------------------------------------------------------------

DETECTION_CASES = [
    ("pfx", {"prompt": "Q", "chosen": "a", "rejected": "b"}),
    ("pfx", {"prompt": "Q", "completions": ["a", "b"], "ranks": [1, 2]}),
    ("hh-rlhf", GLASS),
    ("trl", {"chosen": [user("Q"), assistant("a")], "rejected": [user("Q"), assistant("b")]}),
    ("openai-preference", {"input": {"messages": [user("Q")]}, "preferred_output": [assistant("a")],
                           "non_preferred_output": [assistant("b")]}),
    ("llama-factory", {"conversations": [{"from": "human", "value": "Q"}], "chosen": {"from": "gpt", "value": "a"},
                       "rejected": {"from": "gpt", "value": "b"}}),
    ("llama-factory", {"messages": [user("Q"), assistant("a")], "label": True}),
    ("llama-factory", {"instruction": "Q", "input": "", "chosen": "a", "rejected": "b"}),
    ("axolotl", {"question": "Q", "chosen": "a", "rejected": "b"}),
    ("axolotl", {"instruction": "Q", "chosen_response": "a", "rejected_response": "b"}),
]


@pytest.mark.parametrize("expected, record", DETECTION_CASES)
def test_detect_format_picks_reader(expected, record):
    readers = {name: load_reader(name) for name in available_readers()}
    assert detect_format([record], readers) == expected


def test_detect_format_unknown_lists_formats():
    readers = {name: load_reader(name) for name in available_readers()}
    with pytest.raises(DetectionError) as error:
        detect_format([{"text": "hello"}], readers)
    assert "--from" in str(error.value)
    assert "hh-rlhf" in str(error.value)


def test_detect_format_mixed_shapes_partial_matches():
    readers = {name: load_reader(name) for name in available_readers()}
    records = [GLASS, {"question": "Q", "chosen": "a", "rejected": "b"}, {"text": "x"}]
    with pytest.raises(DetectionError, match="partial matches"):
        detect_format(records, readers)


def test_detect_format_message_cuts_long_field_names():
    readers = {name: load_reader(name) for name in available_readers()}
    record = {f"Below is an instruction number {index} that describes a task": "x" for index in range(20)}
    with pytest.raises(DetectionError) as error:
        detect_format([record], readers)
    assert "and 12 more" in str(error.value)
    assert len(str(error.value)) < 1200
