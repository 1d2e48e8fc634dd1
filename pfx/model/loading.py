"""Load tokenizers, causal LMs and reward models with the shared model options.

Weights load from safetensors only (nothing is unpickled), remote code runs
only with ``--trust-remote-code``, and a peft adapter directory loads on top
of the base model its ``adapter_config.json`` names. Models come back in eval
mode on the resolved device and dtype.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from pfx.errors import RuntimeFailure
from pfx.model.config import ModelOptions
from pfx.model.tokenize import read_chat_template

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ADAPTER_CONFIG = "adapter_config.json"


def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``--device``; ``auto`` picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeFailure("--device cuda: no CUDA device is available; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise RuntimeFailure("--device mps: no MPS device is available; use --device cpu or auto")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """Return the torch dtype for ``--dtype``.

    ``auto`` is bfloat16 on CUDA devices that compute it natively and float32
    elsewhere: CPUs emulate bfloat16 matrix products many times slower, and
    float32 keeps log-probs comparable across runs.
    """
    if name != "auto":
        if name not in DTYPES:
            raise ValueError(f"dtype {name!r} is not one of auto, {', '.join(DTYPES)}")
        return DTYPES[name]
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(name_or_path: str, options: ModelOptions) -> Any:
    """Load the tokenizer of a model (or of an adapter's base model) and apply ``--chat-template``."""
    from transformers import AutoTokenizer

    _check_local_path(name_or_path)
    source = _tokenizer_source(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=options.revision,
                                                  trust_remote_code=options.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(f"cannot load the tokenizer of {name_or_path!r}: {_first_line(exc)}") from exc
    if options.chat_template:
        tokenizer.chat_template = read_chat_template(options.chat_template)
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out everywhere, so any id works; EOS is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name_or_path: str, options: ModelOptions) -> tuple[Any, Any]:
    """Load a causal LM (or a peft adapter on its base) and its tokenizer."""
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, name_or_path, options), load_tokenizer(name_or_path, options)


def load_reward_model(name_or_path: str, options: ModelOptions) -> tuple[Any, Any]:
    """Load a sequence-classification reward model (one output per sequence) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification

    model = _load(AutoModelForSequenceClassification, name_or_path, options)
    labels = getattr(model.config, "num_labels", 1)
    if labels != 1:
        raise RuntimeFailure(f"{name_or_path!r} has {labels} output labels; a reward model has exactly one")
    return model, load_tokenizer(name_or_path, options)


def describe_model(model: Any) -> str:
    """Return a short description for logs: class, parameter count, device and dtype."""
    parameter = next(model.parameters())
    count = sum(p.numel() for p in model.parameters())
    size = f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.1f}M"
    return f"{type(model).__name__}, {size} parameters, {parameter.device.type}, {str(parameter.dtype).replace('torch.', '')}"


def adapter_base(path: str) -> str | None:
    """Return the base model named by a peft adapter directory, or None when ``path`` is no adapter."""
    config_path = os.path.join(path, ADAPTER_CONFIG)
    if not os.path.isfile(config_path):
        return None
    with open(config_path, encoding="utf-8") as handle:
        base = json.load(handle).get("base_model_name_or_path")
    if not base:
        raise RuntimeFailure(f"{config_path} names no base_model_name_or_path; cannot load the adapter")
    return base


def _check_local_path(name_or_path: str) -> None:
    """Raise a clear error for a missing local directory, which transformers reports as a bad hub id."""
    # A hub id is NAME or NAMESPACE/NAME, so a second slash also marks a local path.
    looks_local = (name_or_path.startswith(("/", "./", "../", "~")) or os.path.isabs(name_or_path)
                   or name_or_path.rstrip("/").count("/") > 1)
    if looks_local and not os.path.isdir(os.path.expanduser(name_or_path)):
        raise RuntimeFailure(f"model directory {name_or_path!r} not found, and it is not a hub id "
                             "(NAME or NAMESPACE/NAME); check the path")


def _load(auto_class: Any, name_or_path: str, options: ModelOptions) -> Any:
    _check_local_path(name_or_path)
    from transformers.utils import logging as transformers_logging

    # Weight-loading progress bars would mix into the command's own stderr summary.
    transformers_logging.disable_progress_bar()
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    base = adapter_base(name_or_path)
    try:
        model = auto_class.from_pretrained(base or name_or_path, revision=None if base else options.revision,
                                           dtype=dtype, use_safetensors=True,
                                           trust_remote_code=options.trust_remote_code)
        if base:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, name_or_path, revision=options.revision)
    except (OSError, ValueError) as exc:
        # A mistyped directory name that could be a hub id ends here, after the hub lookup failed.
        hint = "" if os.path.exists(name_or_path) else f" (and no local directory {name_or_path!r} exists)"
        raise RuntimeFailure(f"cannot load model {name_or_path!r}{hint}: {_first_line(exc)}") from exc
    model.to(device)
    model.eval()
    return model


def _tokenizer_source(name_or_path: str) -> str:
    """Return where the tokenizer lives: the adapter directory if it has tokenizer files, else its base model."""
    base = adapter_base(name_or_path)
    if base is None:
        return name_or_path
    has_tokenizer = any(os.path.exists(os.path.join(name_or_path, name))
                        for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))
    return name_or_path if has_tokenizer else base


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
