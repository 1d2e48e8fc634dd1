"""Read nvidia/HelpSteer2 (and HelpSteer) into list records.

A source row contains one ``prompt``, one ``response`` and five attribute
ratings, each 0-4: helpfulness, correctness, coherence, complexity and
verbosity. Consecutive rows that share a prompt become one list record, and
the convert summary counts the rows folded into another row's record as
``merged``. The attribute chosen with ``--score`` (``overall`` means
helpfulness) becomes ``scores``, and all five stay per completion under
``meta.ratings``.

Grouping is by consecutive rows only, so memory stays flat on any input size.
A prompt that comes back after other prompts starts a new record and is
counted as ``prompt repeated later``. Sort the rows by prompt first to merge
them. Multi-turn prompts keep HelpSteer2's ``<extra_id_1>User`` turn markers
unchanged in the prompt string.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

from pfx.errors import RecordError
from pfx.formats import ReadOptions
from pfx.formats.fields import (FeedbackReader, check_choice, count, optional_number, remaining, require,
                                require_text)
from pfx.io import InputLine

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
# --score NAME -> attribute
SCORES = {"overall": "helpfulness", **{attribute: attribute for attribute in ATTRIBUTES}}
SCORE_SCALE = [0, 4]


class Group:
    """The rows of one prompt, collected until the prompt changes."""

    def __init__(self, prompt: str, item: InputLine):
        self.prompt = prompt
        self.items = [item]
        self.responses: list[str] = []
        self.ratings: list[dict[str, Any]] = []
        self.extra: list[dict[str, Any]] = []


class HelpSteer2Reader(FeedbackReader):
    name = "helpsteer2"
    description = "nvidia/HelpSteer2: one response per row rated on five attributes (rows sharing a prompt -> lists)"
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        return "prompt" in record and "response" in record and all(key in record for key in ATTRIBUTES[:3])

    def check_options(self, options: ReadOptions) -> None:
        check_choice("score", options.score, SCORES, self.name)

    def read_row(self, record: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """Return the prompt, the response and the attribute ratings of one row."""
        prompt = require_text(record, "prompt")
        response = require_text(record, "response")
        ratings = {}
        for attribute in ATTRIBUTES:
            value = optional_number(require(record, attribute, "a rating 0-4"), attribute)
            if value is not None and not SCORE_SCALE[0] <= value <= SCORE_SCALE[1]:
                raise RecordError(f"field '{attribute}': {value} is outside {SCORE_SCALE[0]}..{SCORE_SCALE[1]}",
                                  attribute, f"invalid {attribute}")
            ratings[attribute] = value
        return prompt, response, ratings

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        raise NotImplementedError("helpsteer2 builds a record from several rows; use convert()")

    def convert(self, items: Iterable[InputLine], options: ReadOptions, reject: Any) -> Iterator[dict[str, Any]]:
        self.check_options(options)
        attribute = SCORES[options.score]
        finished_prompts: set[bytes] = set()
        group: Group | None = None

        for item in items:
            assert item.record is not None
            try:
                prompt, response, ratings = self.read_row(item.record)
            except RecordError as error:
                reject(item, error)
                continue
            if group is not None and prompt != group.prompt:
                yield from self.finish(group, attribute, options, reject, finished_prompts)
                group = None
            if group is None:
                group = Group(prompt, item)
            else:
                group.items.append(item)
            group.responses.append(response)
            group.ratings.append(ratings)
            group.extra.append(remaining(item.record, ("prompt", "response", *ATTRIBUTES)))
        if group is not None:
            yield from self.finish(group, attribute, options, reject, finished_prompts)

    def finish(self, group: Group, attribute: str, options: ReadOptions, reject: Any,
               finished_prompts: set[bytes]) -> Iterator[dict[str, Any]]:
        """Yield the list record of one group, or reject a prompt with a single response."""
        # A 16-byte digest per prompt keeps the memory for repeat detection small.
        digest = hashlib.blake2b(group.prompt.encode(), digest_size=16).digest()
        if digest in finished_prompts:
            count(options, "prompt repeated later")
        finished_prompts.add(digest)
        if len(group.responses) < 2:
            reject(group.items[0], RecordError(
                "only one response for this prompt, and a list record needs at least 2; rows that share a "
                "prompt must be consecutive", "response", "single response for prompt"))
            return
        meta: dict[str, Any] = {
            "format": self.name,
            "score": attribute,
            "score_scale": SCORE_SCALE,
            "ratings": group.ratings,
        }
        if any(group.extra):
            # Fields beyond HelpSteer2's seven, one object per completion.
            meta["row_fields"] = group.extra
        yield {
            "prompt": group.prompt,
            "completions": group.responses,
            "scores": [ratings[attribute] for ratings in group.ratings],
            "meta": meta,
        }


READER = HelpSteer2Reader()
