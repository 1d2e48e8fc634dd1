"""The one tokenization module of pfx: prompts, answers and pairs to token ids.

Every model command (score, label, generate, judge, train-dpo) turns records
into token ids here, so the prompt/answer boundary, BOS and truncation follow
one set of rules:

- A conversation is rendered with the tokenizer's chat template (or the
  ``--chat-template`` one); a plain string is used as written. A string prompt
  with conversation answers is rejected, because no template defines how to
  join them. A conversation prompt with a string answer treats the answer as one
  assistant message.
- The prompt is tokenized once, and the same ``prompt_ids`` serve every answer.
  Each answer's ids are taken from the joint tokenization of prompt + answer
  when the joint ids start with ``prompt_ids``. When they do not (a tokenizer
  that merges a trailing space of the prompt with the answer's first word),
  the answer is tokenized on its own and the event is counted as
  ``boundary mismatch``: the boundary never shifts.
- Text is tokenized without special tokens. The tokenizer's own leading
  special tokens (BOS) are then added only when the text does not already
  start with them, so a template that writes BOS never yields two
  (``bos deduplicated``).
- Plain-text answers get the tokenizer's EOS appended unless they already end
  with it (``append_eos``); conversation answers end as the template ends them.
- Truncation: the prompt is cut (``keep-end`` keeps its last tokens after
  BOS, ``keep-start`` its first) only when the prompt and the longest answer
  do not fit, and only down to what leaves that answer min(its length,
  max_length // 2) tokens. Each answer is then cut at its end against its own
  budget, max_length - len(prompt_ids). An answer left with no token raises
  ``RecordError``; every cut is counted per side.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from pfx.errors import RecordError
from pfx.records import Text, is_conversation, is_empty
from pfx.records import json_type_name

TRUNCATION_MODES = ("keep-end", "keep-start")
ASSISTANT = "assistant"


@dataclass
class Encoded:
    """Token ids of one prompt and one answer; ``input_ids`` is their concatenation."""

    prompt_ids: list[int]
    answer_ids: list[int]

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.answer_ids


@dataclass
class EncodedPair:
    """Token ids of a pair: one ``prompt_ids`` shared by the chosen and rejected answers."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    @property
    def chosen(self) -> Encoded:
        return Encoded(self.prompt_ids, self.chosen_ids)

    @property
    def rejected(self) -> Encoded:
        return Encoded(self.prompt_ids, self.rejected_ids)


def read_chat_template(path: str) -> str:
    """Return the text of a Jinja chat template file."""
    with open(os.fspath(path), encoding="utf-8") as handle:
        return handle.read()


class Encoder:
    """Tokenize prompts, answers and pairs with one set of boundary, BOS and truncation rules.

    Args:
        tokenizer: a Hugging Face tokenizer (fast or slow).
        max_length: maximum tokens of prompt + answer.
        truncation: ``keep-end`` or ``keep-start``: which end of a too-long prompt to keep.
        append_eos: append the tokenizer's EOS to plain-text answers that do not end with it.

    ``counts`` accumulates events (``boundary mismatch``, ``bos deduplicated``,
    ``prompt truncated``, ``<side> truncated``) for the command summary.
    """

    def __init__(self, tokenizer: Any, max_length: int, truncation: str = "keep-end", append_eos: bool = True):
        if truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation {truncation!r} is not one of {', '.join(TRUNCATION_MODES)}")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        self.append_eos = append_eos
        self.counts: Counter = Counter()
        self.leading_special_ids = _leading_special_ids(tokenizer)
        self.eos_id: int | None = tokenizer.eos_token_id

    # -- public API ----------------------------------------------------------

    def encode_prompt(self, prompt: Text) -> list[int]:
        """Return the ids of a prompt ready for generation, cut to ``max_length`` per ``truncation``.

        A conversation gets the template's generation prompt (the assistant header).
        """
        if is_conversation(prompt):
            # A prompt that ends with an assistant turn is continued, not answered.
            continues = not _ends_with_user_turn(prompt)
            text = self._render(prompt, add_generation_prompt=not continues, field="prompt", continue_final_message=continues)
        else:
            text = _as_string(prompt, "prompt")
        ids = self._tokenize_with_leading_specials(text)
        if len(ids) > self.max_length:
            ids = self._truncate_prompt(ids, self.max_length)
            self.counts["prompt truncated"] += 1
        return ids

    def encode_answer(self, prompt: Text, answer: Text, side: str = "answer") -> Encoded:
        """Return the ids of one prompt and one answer; ``side`` names the answer in errors and counts."""
        prompt_ids, (answer_ids,) = self.encode_answers(prompt, [answer], [side])
        return Encoded(prompt_ids, answer_ids)

    def encode_pair(self, prompt: Text, chosen: Text, rejected: Text) -> EncodedPair:
        """Return the ids of a pair; the prompt ids are the same for both answers."""
        prompt_ids, (chosen_ids, rejected_ids) = self.encode_answers(prompt, [chosen, rejected], ["chosen", "rejected"])
        return EncodedPair(prompt_ids, chosen_ids, rejected_ids)

    def encode_answers(self, prompt: Text, answers: Sequence[Text], sides: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """Return the shared prompt ids and one id list per answer (pairs, lists of completions)."""
        (result,) = self.encode_many([(prompt, answers, sides)])
        if isinstance(result, RecordError):
            raise result
        return result

    def encode_many(self, requests: Sequence[tuple[Text, Sequence[Text], Sequence[str]]]
                    ) -> list[tuple[list[int], list[list[int]]] | RecordError]:
        """Encode many (prompt, answers, sides) requests, as ``encode_answers`` does one, with one tokenizer call.

        Returns, in input order, ``(prompt_ids, answer_ids)`` or the ``RecordError``
        that request raised, so one invalid record does not stop the others. A
        fast tokenizer encodes the batch in Rust on several threads, so this is
        much faster than one call per record. The ids and ``counts`` are the
        same as with one ``encode_answers`` call per request.
        """
        results: list[tuple[list[int], list[list[int]]] | RecordError] = []
        rendered: list[tuple[str, list[str]] | None] = []
        texts: list[str] = []
        for prompt, answers, sides in requests:
            try:
                prompt_text, answer_texts = self._render_texts(prompt, answers, sides)
            except RecordError as error:
                results.append(error)
                rendered.append(None)
                continue
            results.append(([], []))
            rendered.append((prompt_text, answer_texts))
            # The prompt alone, then each answer jointly with its full, untruncated prompt.
            texts.append(prompt_text)
            texts.extend(prompt_text + answer_text for answer_text in answer_texts)

        token_ids = iter(self._tokenize_many(texts))
        for index, ((_, answers, sides), texts_of_request) in enumerate(zip(requests, rendered)):
            if texts_of_request is None:
                continue
            prompt_text, answer_texts = texts_of_request
            prompt_ids = self._add_leading_specials(next(token_ids))
            joint_ids = [self._add_leading_specials(next(token_ids), count=False) for _ in answer_texts]
            try:
                results[index] = self._split_and_truncate(prompt_ids, joint_ids, answer_texts, sides)
            except RecordError as error:
                results[index] = error
                continue
            # An empty answer still has its end-of-turn tokens, so it is kept, but counted:
            # a data set with empty answers usually needs cleaning.
            for answer, side in zip(answers, sides):
                if is_empty(answer):
                    self.counts[f"empty {side} kept"] += 1
        return results

    def _split_and_truncate(self, prompt_ids: list[int], joint_ids: list[list[int]], answer_texts: list[str],
                            sides: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        answer_ids = [self._split_answer(prompt_ids, joint, text) for joint, text in zip(joint_ids, answer_texts)]
        for ids, side in zip(answer_ids, sides):
            if not ids:
                raise RecordError(f"field '{side}': the answer has no tokens", side, f"empty {side}")
        return self._truncate(prompt_ids, answer_ids, sides)

    # -- rendering -----------------------------------------------------------

    def _render_texts(self, prompt: Text, answers: Sequence[Text], sides: Sequence[str]) -> tuple[str, list[str]]:
        """Return the prompt text and each answer's text, so that prompt + answer is the full sequence."""
        if not is_conversation(prompt):
            prompt_text = _as_string(prompt, "prompt")
            for answer, side in zip(answers, sides):
                if is_conversation(answer):
                    raise RecordError(
                        f"field '{side}': a conversation answer needs a conversation prompt, but 'prompt' is a string; "
                        "give both as messages or both as strings",
                        side,
                        "mixed prompt and answer shapes",
                    )
            return prompt_text, [_as_string(answer, side) + self._eos_suffix(answer) for answer, side in zip(answers, sides)]

        prompt_text = self._render(prompt, add_generation_prompt=True, field="prompt")
        full_texts = []
        for answer in answers:
            messages = answer if is_conversation(answer) else [{"role": ASSISTANT, "content": answer}]
            full_texts.append(self._render(list(prompt) + list(messages), add_generation_prompt=False, field="prompt"))

        # A template may render the generation prompt differently from the start of
        # an assistant turn (some insert a thinking block). Then the prompt is the
        # common character prefix of all renderings, the same for every answer.
        shared = min((_common_prefix_length(prompt_text, full) for full in full_texts), default=len(prompt_text))
        if shared < len(prompt_text):
            self.counts["template boundary mismatch"] += 1
            prompt_text = prompt_text[:shared]
        return prompt_text, [full[shared:] for full in full_texts]

    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool, field: str,
                continue_final_message: bool = False) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            name = getattr(self.tokenizer, "name_or_path", "") or "this tokenizer"
            raise RecordError(
                f"field '{field}' is a conversation, but {name} has no chat template; "
                "pass --chat-template FILE or give plain-text records",
                field,
                "no chat template",
            )
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=add_generation_prompt,
                                                      continue_final_message=continue_final_message)
        except TemplateError as error:
            # Templates reject what they cannot render (a system turn, roles that do not alternate).
            raise RecordError(f"field '{field}': the chat template failed on this conversation: {error}", field,
                              "chat template error") from error

    def _eos_suffix(self, answer: Text) -> str:
        eos = self.tokenizer.eos_token
        if not self.append_eos or not eos or not isinstance(answer, str) or answer.endswith(eos):
            return ""
        return eos

    # -- tokenizing ----------------------------------------------------------

    def _tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _tokenize_many(self, texts: Sequence[str]) -> list[list[int]]:
        """Tokenize texts without special tokens in one tokenizer call; an empty text gives no ids.

        A text that occurs several times (one prompt shared by several records) is tokenized once.
        """
        unique = list(dict.fromkeys(text for text in texts if text))
        if not unique:
            return [[] for _ in texts]
        backend = self._fast_backend()
        if backend is not None:
            ids = [encoding.ids for encoding in backend.encode_batch_fast(unique, add_special_tokens=False)]
        else:
            ids = [list(row) for row in self.tokenizer(unique, add_special_tokens=False)["input_ids"]]
        by_text = dict(zip(unique, ids))
        return [list(by_text[text]) if text else [] for text in texts]

    def _fast_backend(self) -> Any | None:
        """Return the Rust tokenizer when calling it directly gives the ids that ``tokenizer(text)`` gives.

        ``encode_batch_fast`` (tokenizers 0.21 and later) skips the character offsets
        that transformers computes and pfx does not use. transformers 5.25 turns the
        backend's truncation and padding off and sets its ``encode_special_tokens`` to the
        tokenizer's ``split_special_tokens`` before each call. So the direct call is
        used only when the backend is already in that state, and otherwise this returns ``None``.
        """
        backend = getattr(self.tokenizer, "_tokenizer", None)
        if not getattr(self.tokenizer, "is_fast", False) or not hasattr(backend, "encode_batch_fast"):
            return None
        if backend.truncation is not None or backend.padding is not None:
            return None
        if backend.encode_special_tokens != bool(getattr(self.tokenizer, "split_special_tokens", False)):
            return None
        return backend

    def _tokenize_with_leading_specials(self, text: str, count: bool = True) -> list[int]:
        return self._add_leading_specials(self._tokenize(text), count)

    def _add_leading_specials(self, ids: list[int], count: bool = True) -> list[int]:
        lead = self.leading_special_ids
        if not lead:
            return ids
        if ids[: len(lead)] == lead:
            if count:
                self.counts["bos deduplicated"] += 1
            return ids
        return lead + ids

    def _split_answer(self, prompt_ids: list[int], joint: list[int], answer_text: str) -> list[int]:
        """Return the answer's ids from the joint ids of prompt + answer, or from the answer alone on a mismatch."""
        if joint[: len(prompt_ids)] == prompt_ids:
            return joint[len(prompt_ids):]
        self.counts["boundary mismatch"] += 1
        # NOTE: a SentencePiece tokenizer that adds a prefix space to every call would add one here
        # too; the byte-level BPE tokenizers of Llama 3, Qwen and GPT-2 do not.
        return self._tokenize(answer_text)

    # -- truncation ----------------------------------------------------------

    def _truncate(self, prompt_ids: list[int], answers: list[list[int]], sides: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        longest = max(len(ids) for ids in answers)
        if len(prompt_ids) + longest > self.max_length:
            prompt_budget = self.max_length - min(longest, self.max_length // 2)
            if len(prompt_ids) > prompt_budget:
                prompt_ids = self._truncate_prompt(prompt_ids, prompt_budget)
                self.counts["prompt truncated"] += 1

        answer_budget = self.max_length - len(prompt_ids)
        truncated = []
        for ids, side in zip(answers, sides):
            if len(ids) > answer_budget:
                ids = ids[:answer_budget]
                self.counts[f"{side} truncated"] += 1
            if not ids:
                raise RecordError(
                    f"field '{side}': no answer token is left within --max-length {self.max_length} "
                    f"after {len(prompt_ids)} prompt tokens; raise --max-length",
                    side,
                    f"{side} truncated to nothing",
                )
            truncated.append(ids)
        return prompt_ids, truncated

    def _truncate_prompt(self, ids: list[int], budget: int) -> list[int]:
        lead = self.leading_special_ids if ids[: len(self.leading_special_ids)] == self.leading_special_ids else []
        body = ids[len(lead):]
        keep = max(budget - len(lead), 0)
        if self.truncation == "keep-start":
            return lead + body[:keep]
        return lead + (body[len(body) - keep:] if keep else [])


def _leading_special_ids(tokenizer: Any) -> list[int]:
    """Return the special ids the tokenizer puts before any text (usually [BOS] or nothing)."""
    probe = "a"
    with_specials = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    without = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for start in range(len(with_specials) - len(without) + 1):
        if with_specials[start:start + len(without)] == without:
            return with_specials[:start]
    return []


def _ends_with_user_turn(conversation: list[dict[str, Any]]) -> bool:
    return not conversation or conversation[-1].get("role") != ASSISTANT


def _common_prefix_length(first: str, second: str) -> int:
    if second.startswith(first):
        return len(first)
    return len(os.path.commonprefix([first, second]))


def _as_string(value: Text, field: str) -> str:
    if isinstance(value, str):
        return value
    raise RecordError(f"field '{field}': expected a string or a list of messages, got {json_type_name(value)}", field,
                      f"invalid {field}")


def describe_boundary(tokenizer: Any, prompt_ids: list[int], answer_ids: list[int], width: int = 4) -> str:
    """Return a one-line view of a sequence's start and its prompt/answer boundary, tokens and ids.

    Example: ``start ['<|begin_of_text|>' 1, 'Name' 45] ... prompt end ['Ġfruit' 88, '.' 14] | answer
    ['ĠApple' 301, '.' 14]`` shows one BOS and where the answer's tokens begin.
    """
    def show(ids: list[int]) -> str:
        tokens = tokenizer.convert_ids_to_tokens(ids)
        return "[" + ", ".join(f"{token!r} {token_id}" for token, token_id in zip(tokens, ids)) + "]"

    return (f"start {show(prompt_ids[:2])} ... prompt end {show(prompt_ids[-width:])} | "
            f"answer {show(answer_ids[:width])} ({len(prompt_ids)} prompt + {len(answer_ids)} answer tokens)")
