"""Anthropic HH-RLHF: ``chosen`` and ``rejected`` each hold a whole transcript.

A transcript is a run of turns, each opened by ``"\\n\\nHuman:"`` or
``"\\n\\nAssistant:"``. The prompt is the longest run of whole turns both
transcripts share, cut back so that each answer starts with an assistant turn.
The answers keep every turn after it. Most records share all but the last
turn, so the answers are single turns, but a transcript that diverges in an
earlier assistant turn keeps all its later turns in the answer. The split is
never made on a character prefix: ``"...Assistant: No"`` and
``"...Assistant: Not"`` share a character prefix but no whole turn.

Standard style (the default) keeps the source text exactly: the prompt ends
with ``"\\n\\nAssistant:"`` and each answer starts where the transcript
continues (usually with a space), so prompt + answer is the original
transcript. Conversational style (``--style conversational``) turns each turn
into a message with surrounding whitespace stripped.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import Reader, ReadOptions
from pfx.formats.messages import passthrough
from pfx.records import json_type_name

TURN_MARKER = re.compile(r"\n\n(Human|Assistant):")
ROLE_OF_SPEAKER = {"Human": "user", "Assistant": "assistant"}
FIELDS = ("chosen", "rejected")


# A turn: (speaker, text after the marker with its leading space). Plain tuples keep parsing fast.
Turn = tuple[str, str]


def parse_transcript(transcript: str, field: str) -> list[Turn]:
    """Split a transcript into turns; raise ``RecordError`` when it does not start with a turn marker."""
    # split() with one group gives [text before the first marker, speaker, text, speaker, text, ...].
    parts = TURN_MARKER.split(transcript)
    if len(parts) < 3 or parts[0].strip():
        raise RecordError(
            f"field '{field}': expected a transcript starting with \"\\n\\nHuman:\", got {transcript[:40]!r}",
            field,
            f"no turns in {field}",
        )
    return list(zip(parts[1::2], parts[2::2]))


def shared_turns(chosen: list[Turn], rejected: list[Turn]) -> int:
    """Return how many leading turns form the prompt (see the module docstring)."""
    shared = 0
    limit = min(len(chosen), len(rejected)) - 1
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    while shared > 0 and not (chosen[shared][0] == rejected[shared][0] == "Assistant"):
        shared -= 1
    return shared


def _answer_offset(transcript: str, turns: list[Turn], index: int) -> int:
    """Return the offset just after the marker of turn ``index``, where its text starts."""
    # Every later turn adds its marker "\n\n" + speaker + ":" to the length after the cut.
    after = sum(len(text) for _, text in turns[index:]) + sum(len(speaker) + 3 for speaker, _ in turns[index + 1 :])
    return len(transcript) - after


def split_transcripts(chosen_text: str, rejected_text: str, style: str = "standard") -> dict[str, Any]:
    """Return ``{"prompt", "chosen", "rejected"}`` for two HH transcripts in the given style."""
    chosen = parse_transcript(chosen_text, "chosen")
    rejected = parse_transcript(rejected_text, "rejected")
    shared = shared_turns(chosen, rejected)

    if style == "conversational":
        def messages(turns: list[Turn]) -> list[dict[str, str]]:
            return [{"role": ROLE_OF_SPEAKER[speaker], "content": text.strip()} for speaker, text in turns]

        return {"prompt": messages(chosen[:shared]), "chosen": messages(chosen[shared:]),
                "rejected": messages(rejected[shared:])}

    if shared == 0:
        # No shared whole turn ending in an assistant marker: the whole transcripts are the answers.
        return {"prompt": "", "chosen": chosen_text, "rejected": rejected_text}
    # The prompt runs to the end of the first answer turn's marker, which both sides share.
    cut_chosen = _answer_offset(chosen_text, chosen, shared)
    cut_rejected = _answer_offset(rejected_text, rejected, shared)
    return {"prompt": chosen_text[:cut_chosen], "chosen": chosen_text[cut_chosen:], "rejected": rejected_text[cut_rejected:]}


class HHRLHFReader(Reader):
    name = "hh-rlhf"
    description = "Anthropic HH-RLHF: chosen and rejected are whole Human/Assistant transcripts."
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        return (
            "prompt" not in record
            and all(isinstance(record.get(field), str) and "\n\nHuman:" in record[field] for field in FIELDS)
        )

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        for field in FIELDS:
            if not isinstance(record.get(field), str):
                raise RecordError(
                    f"field '{field}': expected a transcript string, got {json_type_name(record.get(field))}",
                    field,
                    f"missing {field}" if field not in record else f"invalid {field}",
                )
        style = "conversational" if options.extra.get("style") == "conversational" else "standard"
        pair = split_transcripts(record["chosen"], record["rejected"], style)
        if style == "standard" and any(TURN_MARKER.search(pair[field]) for field in FIELDS):
            # Conversational answers are counted by convert itself, from their message lists.
            options.counts["multi-turn answers"] += 1
        pair.update(passthrough(record, FIELDS))
        return [pair]


READER = HHRLHFReader()
