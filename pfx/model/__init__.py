"""The model core: loading, tokenization and log-probs for every model command.

- ``loading``: ``resolve_device``, ``resolve_dtype``, ``load_tokenizer``,
  ``load_causal_lm`` and ``load_reward_model`` (safetensors only, peft adapters
  on their base model).
- ``tokenize``: ``Encoder``, the one place where records become token ids
  (chat templates, prompt/answer boundary, BOS, EOS, truncation, event counts).
- ``logps``: ``token_logps`` (differentiable), and the batched,
  gradient-free ``answer_logps``, ``pair_logps`` and ``group_logps``.
- ``rewards``: ``reward_scores`` of a sequence-classification model.
- ``cli``: ``--shard K/N`` (``shard_option``, ``take_shard``) and ``batched``.
- ``config``: ``ModelOptions``.

Only ``pfx.model.config`` and ``pfx.model.cli`` may be imported without torch;
every other module here imports torch and transformers and is imported inside
the model commands.
"""
