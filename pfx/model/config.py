"""Model options shared by every model command. Importing this module does not import torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelOptions:
    model: str | None = None
    revision: str | None = None
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    batch_size: int = 8
    max_length: int = 1024  # tokens of prompt + answer
    truncation: str = "keep-end"  # which end of a too-long prompt to keep
    chat_template: str | None = None  # path of a Jinja template that overrides the tokenizer's
    seed: int = 0
    trust_remote_code: bool = False
