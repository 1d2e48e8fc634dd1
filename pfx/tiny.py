"""Build tiny, seeded, random-weight models and tokenizers on local disk.

Tests and ``make demo`` need real transformers models without a hub download.
This module trains a small BPE tokenizer on built-in text and saves a
randomly initialised model of one of three families, each with the tokenizer
behaviour of its family:

- ``llama``: adds BOS itself, and its chat template writes BOS too (the
  doubled-BOS trap of Llama-3 templates).
- ``gpt2``: byte-level BPE whose tokens carry a leading space (" word"), so a
  prompt ending in a space merges with the next word; no chat template.
- ``qwen2``: ChatML template, no BOS.

Command line: ``python -m pfx.tiny OUTDIR [--arch llama|gpt2|qwen2] [--seed N]``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

ARCHES = ("llama", "gpt2", "qwen2")

# Text the tokenizer is trained on: enough English, punctuation, digits and
# markup for fixtures and HH-RLHF-style transcripts to tokenize into subwords.
_CORPUS = """
Human: Assistant: The quick brown fox jumps over the lazy dog. Which number is even: 3, 8 or 11?
Say hello in French. Bonjour. Salut! Is glass a liquid? No, it is an amorphous solid. Yes, it flows.
Name a primary colour. Blue. Purple. What is 2 + 3? 5. Describe a kettle. It boils water.
A kettle is a vessel, usually metal or plastic, with a lid, a spout and a handle, heated on a stove.
You are a careful assistant. Read the following question slowly, think about every word.
How many legs does a spider have? Eight. Six. Name a fruit. Apple. Well, there are many fruits:
apples, pears, plums, cherries, grapes, figs, dates, lemons, limes, oranges, mangoes.
I have flour and eggs. You could make pancakes. I have no milk. Still possible? Water works instead.
Answer in exactly one sentence. Why is the sky blue? Air scatters blue light more than red light.
Because of the ocean. It reflects. Also clouds. Give a synonym for quick: fast, rapid, speedy, swift.
I'm sorry, I can't help with that. Sure, here is how you do it. Thank you! You're welcome.
What do you think? I think that is a good question. Please explain. Let me explain step by step.
[INST] [/INST] $ % & * ( ) [ ] { } < > / \\ | - _ = + ; : ' " , . ? ! 0 1 2 3 4 5 6 7 8 9 10 100
system user assistant tool Output (a) Output (b) [[A]] [[B]] [[C]] verdict winner tie score
"""


def _train_tokenizer(arch: str, vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = {
        "llama": ["<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "gpt2": ["<|endoftext|>"],
        "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    }[arch]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>" if arch == "llama" else None))
    # Byte-level pre-tokenization: a space belongs to the following word (" word"),
    # so "[/INST] " + "8" tokenizes differently from "[/INST]" + " 8".
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    if arch == "llama":
        bos = "<|begin_of_text|>"
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
        )
    return tokenizer, specials


_LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(arch: str = "llama", vocab_size: int = 512) -> Any:
    """Return a ``PreTrainedTokenizerFast`` with the BOS, EOS and template behaviour of ``arch``."""
    from transformers import PreTrainedTokenizerFast

    if arch not in ARCHES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHES)}")
    backend, _ = _train_tokenizer(arch, vocab_size)
    if arch == "llama":
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            pad_token="<|end_of_text|>",
            unk_token="<unk>",
            add_bos_token=True,
        )
        tokenizer.chat_template = _LLAMA_TEMPLATE
    elif arch == "gpt2":
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
        )
        tokenizer.pad_token = tokenizer.eos_token
    else:
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>"
        )
        tokenizer.chat_template = _CHATML_TEMPLATE
    return tokenizer


def build_model_config(arch: str, tokenizer: Any, hidden_size: int = 64, layers: int = 2) -> Any:
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    vocab_size = len(tokenizer)
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}

    if arch == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                           num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=2048, tie_word_embeddings=False, **special)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=hidden_size, n_layer=layers, n_head=4, n_positions=2048, **special)
    return Qwen2Config(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=2048, tie_word_embeddings=True, **special)


def build_tiny_model(
    outdir: str,
    arch: str = "llama",
    seed: int = 0,
    kind: str = "causal-lm",
    hidden_size: int = 64,
    layers: int = 2,
    vocab_size: int = 512,
) -> str:
    """Save a tiny random model and its tokenizer to ``outdir`` and return the path.

    ``kind`` is ``causal-lm`` or ``reward-model`` (sequence classification with
    one label, the shape of a reward model).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    tokenizer = build_tokenizer(arch, vocab_size)
    config = build_model_config(arch, tokenizer, hidden_size, layers)
    torch.manual_seed(seed)
    if kind == "reward-model":
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
    elif kind == "causal-lm":
        model = AutoModelForCausalLM.from_config(config)
    else:
        raise ValueError(f"unknown kind {kind!r}; expected causal-lm or reward-model")
    os.makedirs(outdir, exist_ok=True)
    model.save_pretrained(outdir, safe_serialization=True)
    tokenizer.save_pretrained(outdir)
    return outdir


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pfx.tiny", description="Build a tiny random model for tests and demos.")
    parser.add_argument("outdir")
    parser.add_argument("--arch", choices=ARCHES, default="llama")
    parser.add_argument("--kind", choices=("causal-lm", "reward-model"), default="causal-lm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    build_tiny_model(args.outdir, args.arch, args.seed, args.kind, args.hidden_size, args.layers)


if __name__ == "__main__":
    main()
