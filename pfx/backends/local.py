"""A backend that runs a Hugging Face causal LM with transformers ``generate``.

Prompts are tokenized by the model core's ``Encoder.encode_prompt`` (chat
template with the generation prompt for conversations, BOS never doubled),
grouped by sampling parameters, sorted by length and generated in left-padded
batches of ``--batch-size``. Each group is seeded from ``--seed`` and the
sample index, so a rerun of the same input gives the same samples.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterator

from pfx.backends import Completion, CompletionRequest, RequestRejected
from pfx.errors import RecordError
from pfx.model.config import ModelOptions


class LocalBackend:
    """Generate completions with a local model loaded through ``pfx.model.loading``."""

    kind = "local"

    def __init__(self, model_options: ModelOptions):
        import torch

        from pfx.model.loading import load_causal_lm

        assert model_options.model is not None
        self.options = model_options
        self.model_id = model_options.model if not model_options.revision else f"{model_options.model}@{model_options.revision}"
        self.model, self.tokenizer = load_causal_lm(model_options.model, model_options)
        self.device = next(self.model.parameters()).device
        # Conversation prompts (every judge request) need one; --chat-template can supply it.
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.counts: Counter = Counter()
        self._torch = torch

    def run(self, requests: list[CompletionRequest]) -> Iterator[tuple[int, Completion | RequestRejected]]:
        """Yield ``(index, result)`` batch by batch; a prompt that cannot be encoded is rejected."""
        groups: dict[tuple, list[tuple[int, list[int]]]] = defaultdict(list)
        for index, request in enumerate(requests):
            try:
                ids = self._encode(request)
            except RecordError as exc:
                yield index, RequestRejected(str(exc), exc.field)
                continue
            key = (request.max_tokens, request.temperature, request.top_p, request.seed, request.sample, request.top_logprobs)
            groups[key].append((index, ids))

        for key, members in groups.items():
            max_tokens, temperature, top_p, seed, sample, top_logprobs = key
            # Seeding per group makes a group's samples independent of what else is in the run.
            self._torch.manual_seed((seed or 0) * 1_000_003 + sample)
            members.sort(key=lambda member: len(member[1]))
            for start in range(0, len(members), self.options.batch_size):
                batch = members[start : start + self.options.batch_size]
                completions = self._generate([ids for _, ids in batch], max_tokens, temperature, top_p, top_logprobs)
                for (index, _), completion in zip(batch, completions):
                    yield index, completion

    def close(self) -> None:
        pass

    # -- steps ---------------------------------------------------------------

    def _encode(self, request: CompletionRequest) -> list[int]:
        from pfx.model.tokenize import Encoder

        budget = self.options.max_length - request.max_tokens
        if budget < 1:
            raise RecordError(
                f"--max-length {self.options.max_length} leaves no room for the prompt next to "
                f"{request.max_tokens} new tokens; raise --max-length or lower --max-new-tokens",
                "prompt",
                "prompt does not fit",
            )
        encoder = Encoder(self.tokenizer, max_length=max(budget, 2), truncation=self.options.truncation)
        ids = encoder.encode_prompt(request.prompt)
        if encoder.counts["prompt truncated"] and not request.allow_truncation:
            raise RecordError(
                f"the prompt is longer than --max-length {self.options.max_length} minus --max-new-tokens "
                f"{request.max_tokens} tokens, and cutting it would hide part of what is compared; raise --max-length",
                "prompt",
                "prompt too long",
            )
        self.counts.update(encoder.counts)
        return ids

    def _generate(self, prompts: list[list[int]], max_tokens: int, temperature: float, top_p: float,
                  top_logprobs: int) -> list[Completion]:
        torch = self._torch
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        width = max(len(ids) for ids in prompts)
        # Left padding, so every prompt ends where generation starts.
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in prompts], device=self.device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.device)
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
        with torch.no_grad():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_tokens,
                pad_token_id=pad_id,
                eos_token_id=self.tokenizer.eos_token_id,
                return_dict_in_generate=True,
                output_logits=bool(top_logprobs),
                **sampling,
            )
        new_tokens = output.sequences[:, width:]
        completions = []
        for row in range(len(prompts)):
            ids = new_tokens[row].tolist()
            finish_reason = "length"
            if self.tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(self.tokenizer.eos_token_id)]
                finish_reason = "stop"
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            logprobs = self._logprobs(output.logits, row, ids, top_logprobs) if top_logprobs else None
            completions.append(Completion(text=text, finish_reason=finish_reason, logprobs=logprobs))
        self.counts["generated"] += len(prompts)
        return completions

    def _logprobs(self, logits: tuple, row: int, ids: list[int], top_logprobs: int) -> list[dict[str, Any]]:
        """Return OpenAI-shaped log-probs of the generated tokens, from the raw (unwarped) logits."""
        torch = self._torch
        entries = []
        for step, token_id in enumerate(ids):
            logp = torch.log_softmax(logits[step][row].float(), dim=-1)
            top = torch.topk(logp, k=min(top_logprobs, logp.shape[-1]))
            entries.append({
                "token": self.tokenizer.decode([token_id]),
                "logprob": float(logp[token_id]),
                "top_logprobs": [
                    {"token": self.tokenizer.decode([int(alternative)]), "logprob": float(value)}
                    for value, alternative in zip(top.values.tolist(), top.indices.tolist())
                ],
            })
        return entries
