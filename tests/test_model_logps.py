"""The log-prob engine against hand-derived values and a naive one-sequence-at-a-time loop."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from pfx.model.config import ModelOptions  # noqa: E402
from pfx.model.loading import load_causal_lm  # noqa: E402
from pfx.model.logps import (PassCosts, answer_logps, group_logps, merge_repeats, pair_logps,  # noqa: E402
                             pass_costs, reuse_pays, token_logps)
from pfx.model.tokenize import Encoder  # noqa: E402

PAIRS = [
    ("[INST] Which number is even: 3, 8 or 11? [/INST] ", "8 is even.", "$8 is the answer, I think."),
    ("\n\nHuman: Say hello in French.\n\nAssistant:", " Bonjour.", " Salut!"),
    ("Name a fruit.", "Apple.", "Well, there are many fruits: apples, pears, plums, cherries, grapes, figs."),
    ("Is glass a liquid?", " No, it is an amorphous solid.", " Yes."),
    ("Describe a kettle.", " It boils water.", " A kettle is a vessel with a lid, a spout and a handle."),
]


@pytest.fixture(scope="module", params=["llama", "gpt2", "qwen2"])
def model_and_tokenizer(request, tiny_model):
    return load_causal_lm(tiny_model(request.param), ModelOptions(device="cpu"))


def naive_logp(model, prompt_ids, answer_ids):
    """Score one unpadded sequence with plain log_softmax and a Python loop over answer tokens."""
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logprobs = model(input_ids=ids).logits[0].log_softmax(-1)
    total = 0.0
    for position in range(len(prompt_ids), len(prompt_ids) + len(answer_ids)):
        if position == 0:
            continue
        total += logprobs[position - 1, ids[0, position]].item()
    return total


def assert_pairs_match_naive(model, pairs, results):
    """Check each (chosen, rejected) result against ``naive_logp`` within 1e-4."""
    for pair, (chosen, rejected) in zip(pairs, results):
        assert chosen.sum == pytest.approx(naive_logp(model, pair.prompt_ids, pair.chosen_ids), abs=1e-4)
        assert rejected.sum == pytest.approx(naive_logp(model, pair.prompt_ids, pair.rejected_ids), abs=1e-4)


# -- token_logps: hand-derived ----------------------------------------------------


def test_token_logps_uniform_logits():
    # Vocabulary of 2 with zero logits: every token has log-prob -ln 2. Positions 1 and 2
    # are answer tokens, so sum = -2 ln 2 = -1.386294 and count = 2.
    logits = torch.zeros(1, 3, 2)
    total, count = token_logps(logits, torch.tensor([[0, 1, 0]]), torch.tensor([[0, 1, 1]]))
    torch.testing.assert_close(total, torch.tensor([-2 * math.log(2)]))
    assert count.tolist() == [2]


def test_token_logps_hand_values():
    # Position 0 logits [0, ln 3] give p(token 1) = 3/4; position 1 logits [ln 3, 0] give
    # p(token 1) = 1/4. Answer tokens are ids[1] = 1 and ids[2] = 1:
    # sum = ln(3/4) + ln(1/4) = -0.287682 - 1.386294 = -1.673976.
    ln3 = math.log(3)
    logits = torch.tensor([[[0.0, ln3], [ln3, 0.0], [0.0, 0.0]]], requires_grad=True)
    total, count = token_logps(logits, torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 1]]))
    torch.testing.assert_close(total, torch.tensor([-1.673976]), atol=1e-6, rtol=0)
    assert count.tolist() == [2]
    total.sum().backward()
    assert logits.grad is not None
    # The last position predicts nothing, so it gets no gradient.
    assert logits.grad[0, 2].abs().sum().item() == 0.0


def test_token_logps_mask_excludes_prompt():
    logits = torch.zeros(2, 3, 4)
    total, count = token_logps(logits, torch.tensor([[1, 2, 3], [1, 2, 3]]), torch.tensor([[0, 0, 1], [0, 1, 1]]))
    torch.testing.assert_close(total, torch.tensor([-math.log(4), -2 * math.log(4)]))
    assert count.tolist() == [1, 2]


# -- engine against the naive loop ------------------------------------------------


def test_answer_logps_match_naive(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    encoder = Encoder(tokenizer, max_length=64)
    encoded = [encoder.encode_answer(prompt, answer) for prompt, chosen, rejected in PAIRS for answer in (chosen, rejected)]
    results = answer_logps(model, encoded, batch_size=3)

    assert len(results) == len(encoded)
    for item, result in zip(encoded, results):
        assert result.count == len(item.answer_ids)
        assert result.sum == pytest.approx(naive_logp(model, item.prompt_ids, item.answer_ids), abs=1e-4)
        assert result.mean == pytest.approx(result.sum / result.count)


@pytest.mark.parametrize("reuse_prompt", [True, False, None])
def test_pair_logps_match_naive(model_and_tokenizer, reuse_prompt):
    model, tokenizer = model_and_tokenizer
    encoder = Encoder(tokenizer, max_length=64)
    pairs = [encoder.encode_pair(*pair) for pair in PAIRS]
    results = pair_logps(model, pairs, batch_size=2, reuse_prompt=reuse_prompt)

    for pair, (chosen, rejected) in zip(pairs, results):
        assert chosen.count == len(pair.chosen_ids)
        assert rejected.count == len(pair.rejected_ids)
        assert chosen.sum == pytest.approx(naive_logp(model, pair.prompt_ids, pair.chosen_ids), abs=1e-4)
        assert rejected.sum == pytest.approx(naive_logp(model, pair.prompt_ids, pair.rejected_ids), abs=1e-4)


def test_pair_logps_batch_size_invariant(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    encoder = Encoder(tokenizer, max_length=64)
    pairs = [encoder.encode_pair(*pair) for pair in PAIRS]
    one = pair_logps(model, pairs, batch_size=1)
    five = pair_logps(model, pairs, batch_size=5)
    for (first_chosen, first_rejected), (second_chosen, second_rejected) in zip(one, five):
        assert first_chosen.sum == pytest.approx(second_chosen.sum, abs=1e-4)
        assert first_rejected.sum == pytest.approx(second_rejected.sum, abs=1e-4)


def test_group_logps_lists_match_naive(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    encoder = Encoder(tokenizer, max_length=64)
    groups = [encoder.encode_answers(prompt, [chosen, rejected, chosen + " Indeed."][: 1 + index % 3], ["a", "b", "c"])
              for index, (prompt, chosen, rejected) in enumerate(PAIRS)]
    results = group_logps(model, groups, batch_size=2)

    assert [len(values) for values in results] == [len(answers) for _, answers in groups]
    for (prompt_ids, answers), values in zip(groups, results):
        for answer_ids, value in zip(answers, values):
            assert value.count == len(answer_ids)
            assert value.sum == pytest.approx(naive_logp(model, prompt_ids, answer_ids), abs=1e-4)


class CountOnlyLogits(torch.nn.Module):
    """A model from outside transformers whose ``logits_to_keep`` must be an int, as in older remote code."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids=None, logits_to_keep=0, **kwargs):
        assert isinstance(logits_to_keep, int)
        return self.inner(input_ids=input_ids, logits_to_keep=logits_to_keep, **kwargs)


@pytest.mark.parametrize("reuse_prompt", [True, False])
def test_pair_logps_count_only_logits_to_keep(model_and_tokenizer, reuse_prompt):
    model, tokenizer = model_and_tokenizer
    wrapped = CountOnlyLogits(model)
    encoder = Encoder(tokenizer, max_length=64)
    pairs = [encoder.encode_pair(*pair) for pair in PAIRS]
    results = pair_logps(wrapped, pairs, batch_size=3, reuse_prompt=reuse_prompt)
    assert_pairs_match_naive(model, pairs, results)


# Architectures whose position and mask handling differ from Llama's: learned positions with an
# offset (OPT), rotary on part of the head (GPT-NeoX, Phi-3), Falcon's fused attention, Gemma-2's
# alternating sliding-window layers and soft-capped logits. Right padding without a mask, and
# the cached prompt path, must match one unpadded sequence at a time on each.
OTHER_ARCHITECTURES = {
    "opt": ("OPTConfig", dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                              word_embed_proj_dim=32)),
    "gpt_neox": ("GPTNeoXConfig", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2)),
    "phi3": ("Phi3Config", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                num_key_value_heads=1, pad_token_id=0)),
    "falcon": ("FalconConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)),
    "mistral": ("MistralConfig", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1)),
    "gemma2": ("Gemma2Config", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                    num_key_value_heads=1, head_dim=16, sliding_window=64)),
}


@pytest.mark.parametrize("arch", sorted(OTHER_ARCHITECTURES))
@pytest.mark.parametrize("reuse_prompt", [True, False])
def test_pair_logps_other_architectures(arch, reuse_prompt):
    import random

    import transformers

    from pfx.model.tokenize import EncodedPair

    config_name, sizes = OTHER_ARCHITECTURES[arch]
    config = getattr(transformers, config_name)(vocab_size=64, bos_token_id=1, eos_token_id=2, **sizes)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    rng = random.Random(0)

    def ids(low, high):
        return [rng.randrange(3, 64) for _ in range(rng.randint(low, high))]

    pairs = [EncodedPair(ids(2, 20), ids(1, 15), ids(1, 15)) for _ in range(5)]
    results = pair_logps(model, pairs, batch_size=3, reuse_prompt=reuse_prompt)
    assert_pairs_match_naive(model, pairs, results)


def test_pair_logps_sliding_window_model():
    """A sliding-window cache must not lose prompt tokens to the padding of shorter prompts."""
    import random

    from transformers import Gemma2Config, Gemma2ForCausalLM

    from pfx.model.logps import sliding_window
    from pfx.model.tokenize import EncodedPair

    torch.manual_seed(0)
    config = Gemma2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8)
    model = Gemma2ForCausalLM(config).eval()
    rng = random.Random(0)
    pairs = [EncodedPair([rng.randrange(3, 64) for _ in range(length)], [5, 6, 7], [8, 9])
             for length in (3, 12, 20)]
    assert sliding_window(model) == 8
    results = pair_logps(model, pairs, batch_size=3, reuse_prompt=True)
    assert_pairs_match_naive(model, pairs, results)


# -- choosing prompt reuse ----------------------------------------------------------


def test_reuse_pays_hand_values():
    costs = PassCosts(per_token=100.0, per_score=1.0)
    # P = 10, answers 10 and 10. Separate: 2 × (20·100 + 20²/2) = 4,400. Reuse:
    # 30·100 + 10²/2 + 1.5 × 2 × 10·20 = 3,000 + 50 + 600 = 3,650: cheaper.
    assert reuse_pays(10, [10, 10], costs)
    # P = 10, answers 100 and 100. Separate: 2 × (110·100 + 110²/2) = 34,100. Reuse:
    # 210·100 + 50 + 1.5 × 2 × 100·110 = 21,000 + 50 + 33,000 = 54,050: dearer.
    assert not reuse_pays(10, [100, 100], costs)
    # More answers to the same prompt save more. P = 40 and one answer of 40: separate
    # 80·100 + 80²/2 = 11,200; reuse 80·100 + 800 + 1.5 × 40·80 = 13,600. Four answers
    # of 40: separate 44,800; reuse 200·100 + 800 + 1.5 × 4 × 3,200 = 40,000.
    assert reuse_pays(40, [40] * 4, costs)
    assert not reuse_pays(40, [40], costs)


def test_pass_costs_of_tiny_llama(tiny_model):
    model, _ = load_causal_lm(tiny_model("llama"), ModelOptions(device="cpu"))
    costs = pass_costs(model)
    config = model.config
    weights = sum(p.numel() for p in model.model.layers.parameters()) + sum(p.numel() for p in model.model.norm.parameters())
    assert costs.per_token == 2 * weights
    assert costs.per_score == 4 * config.num_attention_heads * config.head_dim * config.num_hidden_layers


def test_default_reuse_decides_per_group(model_and_tokenizer, monkeypatch):
    """A long prompt with short answers reuses its cache; a short prompt with long answers does not."""
    from pfx.model import logps

    model, tokenizer = model_and_tokenizer
    encoder = Encoder(tokenizer, max_length=256)
    long_prompt = " ".join(["Read the following question slowly, think about every word."] * 8)
    long_answer = " ".join(["Well, there are many fruits: apples, pears, plums, cherries, grapes, figs."] * 8)
    groups = [encoder.encode_answers(long_prompt + " Name a fruit.", [" Apple.", " Plum."], ["a", "b"]),
              encoder.encode_answers("Name a fruit.", [" " + long_answer, " Apple. " + long_answer], ["a", "b"])]
    costs = pass_costs(model)
    assert reuse_pays(len(groups[0][0]), [len(a) for a in groups[0][1]], costs)
    assert not reuse_pays(len(groups[1][0]), [len(a) for a in groups[1][1]], costs)

    seen = {"cached": 0, "whole": 0}
    cached_path, whole_path = logps._group_batch_with_cache, logps._groups_without_cache
    monkeypatch.setattr(logps, "_group_batch_with_cache",
                        lambda m, g: seen.__setitem__("cached", seen["cached"] + len(g)) or cached_path(m, g))
    monkeypatch.setattr(logps, "_groups_without_cache",
                        lambda m, g, b: seen.__setitem__("whole", seen["whole"] + len(g)) or whole_path(m, g, b))
    results = group_logps(model, groups, batch_size=2)
    assert seen == {"cached": 1, "whole": 1}
    for (prompt_ids, answers), values in zip(groups, results):
        for answer_ids, value in zip(answers, values):
            assert value.sum == pytest.approx(naive_logp(model, prompt_ids, answer_ids), abs=1e-4)


# -- repeated prompts and answers ---------------------------------------------------


def test_merge_repeats_hand_case():
    # Pairs made from the list [A, B, C] of prompt P, then one pair of another prompt Q.
    groups = [([1, 2], [[10], [11]]), ([1, 2], [[10], [12]]), ([1, 2], [[11], [12]]), ([3], [[10], [11]])]
    merged, places = merge_repeats(groups)
    assert merged == [([1, 2], [[10], [11], [12]]), ([3], [[10], [11]])]
    assert places == [(0, [0, 1]), (0, [0, 2]), (0, [1, 2]), (1, [0, 1])]


def test_merge_repeats_bounds_a_merged_group():
    # 20 pairs of one prompt with distinct answers: a merged group stops taking
    # records once it contains 6 answers, and no record is split.
    groups = [([7], [[2 * i], [2 * i + 1]]) for i in range(20)]
    merged, places = merge_repeats(groups, max_answers=6)
    assert [len(answers) for _, answers in merged] == [6] * 6 + [4]
    assert places[3] == (1, [0, 1])


def test_row_batches_bound_the_answer_pass():
    from pfx.model.logps import _row_batches

    # At most 4 answer rows a batch; the group of 20 answers goes alone.
    assert list(_row_batches([5, 6, 7, 8, 9], [2, 2, 20, 2, 2], 4)) == [[5, 6], [7], [8, 9]]


def test_pairs_from_one_list_score_each_answer_once(model_and_tokenizer, monkeypatch):
    from pfx.model import logps

    model, tokenizer = model_and_tokenizer
    encoder = Encoder(tokenizer, max_length=64)
    prompt, answers = "Name a fruit.", [" Apple.", " Plum, or a pear.", " Well, there are many fruits."]
    pairs = [encoder.encode_pair(prompt, answers[a], answers[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    scored = []
    whole_path = logps._groups_without_cache
    monkeypatch.setattr(logps, "_groups_without_cache",
                        lambda m, g, b: scored.extend(a for _, answers in g for a in answers) or whole_path(m, g, b))
    results = pair_logps(model, pairs, batch_size=4, reuse_prompt=False)
    assert len(scored) == 3
    assert_pairs_match_naive(model, pairs, results)


def test_answer_logps_empty_prompt_skips_first(tiny_model):
    # The gpt2 tokenizer adds no BOS, so with an empty prompt the first answer token has
    # nothing to be predicted from and is not counted.
    model, tokenizer = load_causal_lm(tiny_model("gpt2"), ModelOptions(device="cpu"))
    encoded = Encoder(tokenizer, max_length=64).encode_answer("", "Name a fruit.")
    (result,) = answer_logps(model, [encoded], batch_size=1)
    assert encoded.prompt_ids == []
    assert result.count == len(encoded.answer_ids) - 1
    assert result.sum == pytest.approx(naive_logp(model, [], encoded.answer_ids), abs=1e-4)


def test_pair_logps_empty_prompt_falls_back(tiny_model):
    model, tokenizer = load_causal_lm(tiny_model("gpt2"), ModelOptions(device="cpu"))
    encoder = Encoder(tokenizer, max_length=64)
    pairs = [encoder.encode_pair("", "Blue.", "Purple."), encoder.encode_pair("Name a fruit.", " Apple.", " Plum.")]
    results = pair_logps(model, pairs, batch_size=2, reuse_prompt=True)
    assert results[0][0].sum == pytest.approx(naive_logp(model, [], pairs[0].chosen_ids), abs=1e-4)
    assert results[1][1].sum == pytest.approx(naive_logp(model, pairs[1].prompt_ids, pairs[1].rejected_ids), abs=1e-4)


def test_pair_logps_cache_without_select(model_and_tokenizer, monkeypatch):
    """A cache that cannot select batch rows falls back to whole sequences with the same results."""
    from transformers import DynamicCache

    for owner in DynamicCache.__mro__:
        if "batch_select_indices" in vars(owner):
            monkeypatch.delattr(owner, "batch_select_indices")
    model, tokenizer = model_and_tokenizer
    encoder = Encoder(tokenizer, max_length=64)
    pairs = [encoder.encode_pair(*pair) for pair in PAIRS]
    results = pair_logps(model, pairs, batch_size=3, reuse_prompt=True)
    assert_pairs_match_naive(model, pairs, results)
