"""Loading models, adapters and tokenizers with the shared model options."""

from __future__ import annotations

import os
import shutil

import pytest

torch = pytest.importorskip("torch")

from pfx.errors import RuntimeFailure  # noqa: E402
from pfx.model.config import ModelOptions  # noqa: E402
from pfx.model.loading import (  # noqa: E402
    adapter_base,
    load_causal_lm,
    load_reward_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
)


def test_resolve_dtype_auto_cpu():
    assert resolve_dtype("auto", "cpu") == torch.float32


@pytest.mark.parametrize("name,dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16),
                                        ("float16", torch.float16)])
def test_resolve_dtype_explicit(name, dtype):
    assert resolve_dtype(name, "cpu") == dtype


def test_resolve_device_auto_available():
    device = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if device.type != "mps":
        assert device.type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_cuda_missing():
    with pytest.raises(RuntimeFailure, match="--device cpu"):
        resolve_device("cuda")


def test_load_causal_lm_eval_float32(tiny_model):
    model, tokenizer = load_causal_lm(tiny_model("llama"), ModelOptions(device="cpu", dtype="auto"))
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert tokenizer.pad_token_id is not None


def test_load_causal_lm_dtype_option(tiny_model):
    model, _ = load_causal_lm(tiny_model("qwen2"), ModelOptions(device="cpu", dtype="bfloat16"))
    assert next(model.parameters()).dtype == torch.bfloat16


def test_load_reward_model_one_label(tiny_model):
    model, _ = load_reward_model(tiny_model("llama", kind="reward-model"), ModelOptions(device="cpu"))
    assert model.config.num_labels == 1
    assert not model.training


def test_load_missing_model_fails(tmp_path):
    with pytest.raises(RuntimeFailure, match="not found"):
        load_causal_lm(str(tmp_path / "no-such-model"), ModelOptions(device="cpu"))


def test_load_hub_like_typo_says_no_local_directory(tmp_path):
    # A name that could be a hub id goes to the hub first; offline, that fails at once.
    import os
    import subprocess
    import sys

    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "Q?", "chosen": "A.", "rejected": "B."}\n')
    result = subprocess.run([sys.executable, "-m", "pfx", "score", "--logps", "--model", "modle", str(data)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    assert "cannot load model 'modle' (and no local directory 'modle' exists)" in result.stderr
    assert "Traceback" not in result.stderr


def test_load_missing_relative_model_dir_names_path():
    # build/demo/nomodel has two slashes, so it cannot be a hub id: the error reports it not found.
    with pytest.raises(RuntimeFailure, match="'build/demo/nomodel' not found, and it is not a hub id"):
        load_causal_lm("build/demo/nomodel", ModelOptions(device="cpu"))


def test_load_pickle_weights_refused(tiny_model, tmp_path):
    # A model directory with only a pickled state dict must not be unpickled.
    from transformers import AutoModelForCausalLM

    source = tiny_model("gpt2")
    model = AutoModelForCausalLM.from_pretrained(source)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    shutil.copy(os.path.join(source, "config.json"), tmp_path / "config.json")
    with pytest.raises(RuntimeFailure, match="cannot load"):
        load_causal_lm(str(tmp_path), ModelOptions(device="cpu"))


def test_load_adapter_on_base(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_path = tiny_model("llama")
    base = AutoModelForCausalLM.from_pretrained(base_path)
    # init_lora_weights=False starts LoRA with random non-zero weights, so the adapter changes the outputs.
    adapted = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapted.save_pretrained(tmp_path)
    assert adapter_base(str(tmp_path)) == base_path

    model, tokenizer = load_causal_lm(str(tmp_path), ModelOptions(device="cpu"))
    ids = torch.tensor([tokenizer("Name a fruit.")["input_ids"]])
    with torch.no_grad():
        expected = adapted.eval()(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(base_path).eval()(input_ids=ids).logits
        loaded = model(input_ids=ids).logits
    torch.testing.assert_close(loaded, expected)
    assert not torch.allclose(loaded, plain)


def test_load_tokenizer_chat_template(tiny_model, tmp_path):
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    tokenizer = load_tokenizer(tiny_model("gpt2"), ModelOptions(chat_template=str(template)))
    assert tokenizer.chat_template == template.read_text()
