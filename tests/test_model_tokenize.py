"""Tokenization rules on real tokenizers with the behaviours that broke peer tools.

The tiny tokenizers from pfx.tiny carry the traps: llama adds BOS and its
template writes BOS too; gpt2 merges a prompt's trailing space with the next
word and has no chat template; qwen2 has a ChatML template and no BOS.
"""

from __future__ import annotations

import pytest

from pfx.errors import RecordError
from pfx.model.config import ModelOptions
from pfx.tiny import build_tokenizer

pytest.importorskip("transformers")

from pfx.model.loading import load_tokenizer  # noqa: E402
from pfx.model.tokenize import Encoder  # noqa: E402


@pytest.fixture(scope="module")
def tokenizers():
    return {arch: build_tokenizer(arch) for arch in ("llama", "gpt2", "qwen2")}


def _decode(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=False)


# -- prompt/answer boundary ----------------------------------------------------

INST_PROMPT = "[INST] Which number is even: 3, 8 or 11? [/INST] "


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_boundary_trailing_space_counted(tokenizers, arch):
    tokenizer = tokenizers[arch]
    encoder = Encoder(tokenizer, max_length=128)
    pair = encoder.encode_pair(INST_PROMPT, "8 is even.", "$8 is the answer, I think.")

    # Joint tokenization merges the trailing space with "8" but not with "$": one side
    # disagrees with the prompt's own ids, and that is counted, not shifted.
    assert encoder.counts["boundary mismatch"] == 1
    assert pair.chosen.input_ids[: len(pair.prompt_ids)] == pair.prompt_ids
    assert pair.rejected.input_ids[: len(pair.prompt_ids)] == pair.prompt_ids
    assert _decode(tokenizer, pair.chosen_ids) == "8 is even." + tokenizer.eos_token
    assert _decode(tokenizer, pair.rejected_ids) == "$8 is the answer, I think." + tokenizer.eos_token
    assert _decode(tokenizer, pair.prompt_ids).endswith("[/INST] ")


def test_boundary_joint_when_consistent(tokenizers):
    tokenizer = tokenizers["gpt2"]
    encoder = Encoder(tokenizer, max_length=128)
    prompt = "\n\nHuman: Say hello in French.\n\nAssistant:"
    pair = encoder.encode_pair(prompt, " Bonjour.", " Salut!")

    assert encoder.counts["boundary mismatch"] == 0
    joint = tokenizer(prompt + " Bonjour." + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    assert pair.chosen.input_ids == joint
    assert pair.chosen_ids[0] != pair.rejected_ids[0]


def test_empty_answer_kept_and_counted(tokenizers):
    tokenizer = tokenizers["qwen2"]
    encoder = Encoder(tokenizer, max_length=128)
    text_pair = encoder.encode_pair("Name a fruit.", "", " Plum.")
    user = [{"role": "user", "content": "Name a fruit."}]
    encoder.encode_pair(user, [{"role": "assistant", "content": " "}], [{"role": "assistant", "content": "Plum."}])

    # The empty text answer is the EOS alone; the blank message keeps its end-of-turn tokens.
    assert _decode(tokenizer, text_pair.chosen_ids) == tokenizer.eos_token
    assert encoder.counts["empty chosen kept"] == 2
    assert encoder.counts["empty rejected kept"] == 0


def test_boundary_prompt_same_both_sides(tokenizers):
    encoder = Encoder(tokenizers["llama"], max_length=128)
    first = encoder.encode_answer(INST_PROMPT, "8 is even.", side="chosen")
    second = encoder.encode_answer(INST_PROMPT, "$8 is the answer, I think.", side="rejected")
    assert first.prompt_ids == second.prompt_ids


# -- BOS ------------------------------------------------------------------------

COLOUR = {
    "prompt": [{"role": "user", "content": "Name a primary colour."}],
    "chosen": [{"role": "assistant", "content": "Blue."}],
    "rejected": [{"role": "assistant", "content": "Purple."}],
}


def test_bos_once_with_template(tokenizers):
    tokenizer = tokenizers["llama"]
    encoder = Encoder(tokenizer, max_length=128)
    pair = encoder.encode_pair(COLOUR["prompt"], COLOUR["chosen"], COLOUR["rejected"])
    bos = tokenizer.bos_token_id

    for sequence in (pair.chosen.input_ids, pair.rejected.input_ids):
        assert sequence[0] == bos
        assert sequence.count(bos) == 1
    assert pair.chosen_ids[0] != bos
    assert pair.rejected_ids[0] != bos
    assert encoder.counts["bos deduplicated"] >= 1


def test_bos_added_to_plain_text(tokenizers):
    tokenizer = tokenizers["llama"]
    encoded = Encoder(tokenizer, max_length=64).encode_answer("Name a fruit.", "Apple.")
    assert encoded.input_ids[0] == tokenizer.bos_token_id
    assert encoded.input_ids.count(tokenizer.bos_token_id) == 1


def test_bos_prerendered_text_matches_messages(tokenizers):
    tokenizer = tokenizers["llama"]
    encoder = Encoder(tokenizer, max_length=128)
    messages = encoder.encode_answer([{"role": "user", "content": "What is 2 + 3?"}],
                                     [{"role": "assistant", "content": "5"}])
    rendered_prompt = ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 3?<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n")
    text = encoder.encode_answer(rendered_prompt, "5<|eot_id|>")

    assert text.input_ids == messages.input_ids
    assert text.prompt_ids == messages.prompt_ids


def test_bos_absent_for_chatml(tokenizers):
    tokenizer = tokenizers["qwen2"]
    pair = Encoder(tokenizer, max_length=128).encode_pair(COLOUR["prompt"], COLOUR["chosen"], COLOUR["rejected"])
    assert _decode(tokenizer, pair.prompt_ids).startswith("<|im_start|>user")
    assert _decode(tokenizer, pair.prompt_ids).endswith("<|im_start|>assistant\n")
    assert _decode(tokenizer, pair.chosen_ids) == "Blue.<|im_end|>\n"


# -- EOS --------------------------------------------------------------------------


def test_eos_appended_once(tokenizers):
    tokenizer = tokenizers["gpt2"]
    encoder = Encoder(tokenizer, max_length=64)
    plain = encoder.encode_answer("Name a fruit.", " Apple.")
    already = encoder.encode_answer("Name a fruit.", " Apple." + tokenizer.eos_token)
    assert plain.answer_ids == already.answer_ids
    assert plain.answer_ids.count(tokenizer.eos_token_id) == 1


def test_eos_off_keeps_answer(tokenizers):
    tokenizer = tokenizers["gpt2"]
    encoded = Encoder(tokenizer, max_length=64, append_eos=False).encode_answer("Name a fruit.", " Apple.")
    assert _decode(tokenizer, encoded.answer_ids) == " Apple."


# -- truncation --------------------------------------------------------------------

FRUIT_LONG = ("Well, there are many fruits one could name, such as apples, pears, plums, cherries, grapes, figs, "
              "dates, lemons, limes, oranges, mangoes and many more besides these.")
SPIDER_PROMPT = ("You are a careful assistant. Read the following question slowly, think about every word, consider "
                 "the units, and then answer briefly: how many legs does a spider have?")
KETTLE_LONG = ("A kettle is a vessel, usually metal or plastic, with a lid, a spout and a handle, heated on a stove or "
               "by an element, used to boil water for tea, coffee and cooking.")


def test_truncation_own_budget_per_answer(tokenizers):
    tokenizer = tokenizers["llama"]
    encoder = Encoder(tokenizer, max_length=16)
    pair = encoder.encode_pair("Name a fruit.", "Apple.", FRUIT_LONG)
    whole = Encoder(tokenizer, max_length=1024).encode_pair("Name a fruit.", "Apple.", FRUIT_LONG)

    assert pair.chosen_ids == whole.chosen_ids
    assert pair.prompt_ids == whole.prompt_ids
    assert len(pair.rejected.input_ids) == 16
    assert pair.rejected_ids == whole.rejected_ids[: 16 - len(pair.prompt_ids)]
    assert encoder.counts["rejected truncated"] == 1
    assert encoder.counts["chosen truncated"] == 0
    assert encoder.counts["prompt truncated"] == 0


@pytest.mark.parametrize("mode", ["keep-end", "keep-start"])
def test_truncation_long_prompt_keeps_answers(tokenizers, mode):
    tokenizer = tokenizers["llama"]
    encoder = Encoder(tokenizer, max_length=16, truncation=mode)
    pair = encoder.encode_pair(SPIDER_PROMPT, " Eight.", " Six.")
    whole = Encoder(tokenizer, max_length=1024).encode_pair(SPIDER_PROMPT, " Eight.", " Six.")

    assert pair.chosen_ids == whole.chosen_ids
    assert pair.rejected_ids == whole.rejected_ids
    assert len(pair.chosen.input_ids) <= 16
    assert len(pair.rejected.input_ids) <= 16
    assert pair.prompt_ids[0] == tokenizer.bos_token_id
    kept = len(pair.prompt_ids) - 1
    body = whole.prompt_ids[1:]
    expected = body[-kept:] if mode == "keep-end" else body[:kept]
    assert pair.prompt_ids[1:] == expected
    assert encoder.counts["prompt truncated"] == 1


def test_truncation_both_sides_within_cutoff(tokenizers):
    tokenizer = tokenizers["gpt2"]
    encoder = Encoder(tokenizer, max_length=24)
    pair = encoder.encode_pair("Describe a kettle.", "It boils water.", KETTLE_LONG)

    assert len(pair.chosen.input_ids) <= 24
    assert len(pair.rejected.input_ids) == 24
    assert pair.chosen.input_ids[: len(pair.prompt_ids)] == pair.rejected.input_ids[: len(pair.prompt_ids)]
    assert encoder.counts["rejected truncated"] == 1
    assert encoder.counts["chosen truncated"] == 0


def test_truncation_empty_answer_raises(tokenizers):
    encoder = Encoder(tokenizers["gpt2"], max_length=16, append_eos=False)
    with pytest.raises(RecordError) as raised:
        encoder.encode_pair("Name a fruit.", "Apple.", "")
    assert raised.value.field == "rejected"
    assert raised.value.reason == "empty rejected"


def test_truncation_prompt_for_generation(tokenizers):
    tokenizer = tokenizers["llama"]
    encoder = Encoder(tokenizer, max_length=8)
    ids = encoder.encode_prompt(SPIDER_PROMPT)
    assert len(ids) == 8
    assert ids[0] == tokenizer.bos_token_id
    assert encoder.counts["prompt truncated"] == 1


# -- templates and shapes ----------------------------------------------------------


def test_template_missing_raises_with_fix(tokenizers):
    encoder = Encoder(tokenizers["gpt2"], max_length=64)
    with pytest.raises(RecordError) as raised:
        encoder.encode_pair(COLOUR["prompt"], COLOUR["chosen"], COLOUR["rejected"])
    assert raised.value.field == "prompt"
    assert "--chat-template" in str(raised.value)


def test_template_file_overrides(tiny_model, tmp_path):
    template = tmp_path / "plain.jinja"
    template.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}assistant: {% endif %}")
    tokenizer = load_tokenizer(tiny_model("gpt2"), ModelOptions(chat_template=str(template)))
    pair = Encoder(tokenizer, max_length=64).encode_pair(COLOUR["prompt"], COLOUR["chosen"], COLOUR["rejected"])
    assert _decode(tokenizer, pair.prompt_ids) == "user: Name a primary colour.\nassistant: "
    assert _decode(tokenizer, pair.chosen_ids) == "Blue.\n"


def test_prompt_generation_header(tokenizers):
    tokenizer = tokenizers["llama"]
    ids = Encoder(tokenizer, max_length=64).encode_prompt(COLOUR["prompt"])
    assert _decode(tokenizer, ids).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert ids.count(tokenizer.bos_token_id) == 1


def test_shapes_mixed_raises(tokenizers):
    encoder = Encoder(tokenizers["qwen2"], max_length=64)
    with pytest.raises(RecordError) as raised:
        encoder.encode_pair("Name a primary colour.", COLOUR["chosen"], COLOUR["rejected"])
    assert raised.value.field == "chosen"


def test_shapes_string_answer_to_conversation(tokenizers):
    tokenizer = tokenizers["qwen2"]
    encoder = Encoder(tokenizer, max_length=64)
    as_text = encoder.encode_answer(COLOUR["prompt"], "Blue.")
    as_message = encoder.encode_answer(COLOUR["prompt"], COLOUR["chosen"])
    assert as_text.input_ids == as_message.input_ids


def test_multiturn_prompt_shared(tokenizers):
    tokenizer = tokenizers["qwen2"]
    prompt = [{"role": "user", "content": "I have flour and eggs."},
              {"role": "assistant", "content": "You could make pancakes."},
              {"role": "user", "content": "I have no milk. Still possible?"}]
    pair = Encoder(tokenizer, max_length=128).encode_pair(prompt, [{"role": "assistant", "content": "Yes."}],
                                                          [{"role": "assistant", "content": "No."}])
    text = _decode(tokenizer, pair.prompt_ids)
    assert "I have flour and eggs." in text
    assert "You could make pancakes." in text
    assert text.endswith("Still possible?<|im_end|>\n<|im_start|>assistant\n")


def test_template_error_is_record_error(tiny_model, tmp_path):
    template = tmp_path / "no-system.jinja"
    template.write_text("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                        "{% endif %}{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    tokenizer = load_tokenizer(tiny_model("gpt2"), ModelOptions(chat_template=str(template)))
    prompt = [{"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": "Why?"}]
    with pytest.raises(RecordError) as raised:
        Encoder(tokenizer, max_length=64).encode_pair(prompt, "Because.", "No.")
    assert raised.value.reason == "chat template error"
    assert "System role not supported" in str(raised.value)


# -- batched encoding -------------------------------------------------------------

BATCH_REQUESTS = [
    (INST_PROMPT, ["8 is even.", "$8 is the answer, I think."], ["chosen", "rejected"]),
    ("Name a fruit.", ["Apple.", ""], ["chosen", "rejected"]),
    ([{"role": "user", "content": "Say hi."}], ["Hi!", "Hello there, friend."], ["chosen", "rejected"]),
    ("Name a fruit.", [[{"role": "assistant", "content": "Apple."}]], ["chosen"]),
    (INST_PROMPT, ["8 is even.", "Eight, which is " + "even " * 40], ["chosen", "rejected"]),
    ("", ["An answer with no prompt."], ["completions[0]"]),
]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_encode_many_matches_one_by_one(tokenizers, arch):
    tokenizer = tokenizers[arch]
    single = Encoder(tokenizer, max_length=24, append_eos=arch != "qwen2")
    batched = Encoder(tokenizer, max_length=24, append_eos=arch != "qwen2")
    expected = []
    for prompt, answers, sides in BATCH_REQUESTS:
        try:
            expected.append(single.encode_answers(prompt, answers, sides))
        except RecordError as error:
            expected.append((error.field, error.reason))

    results = batched.encode_many(BATCH_REQUESTS)

    assert len(results) == len(BATCH_REQUESTS)
    for want, got in zip(expected, results):
        if isinstance(got, RecordError):
            assert (got.field, got.reason) == want
        else:
            assert got == want
    assert batched.counts == single.counts


def test_encode_many_matches_tokenizer_call(tokenizers):
    tokenizer = tokenizers["llama"]
    encoder = Encoder(tokenizer, max_length=4096)
    texts = ["Hello world.", "", "Grüße, 世界! <s> and </s> as text", "Hello world.", "  spaces  "]

    expected = [list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else [] for text in texts]

    assert encoder._fast_backend() is not None
    assert encoder._tokenize_many(texts) == expected
    # The same through the transformers call that slow tokenizers take.
    encoder._fast_backend = lambda: None
    assert encoder._tokenize_many(texts) == expected


def test_encode_many_repeated_prompt_shared(tokenizers):
    encoder = Encoder(tokenizers["gpt2"], max_length=64)
    requests = [("Name a fruit.", ["Apple.", "Pear."], ["chosen", "rejected"])] * 3

    results = encoder.encode_many(requests)

    assert results[0] == results[1] == results[2]
    assert results[0][0] is not results[1][0]
