"""Split-and-merge for order-inconsistent verdicts, after "Split and Merge: Aligning Position Biases in
LLM-based Evaluators" (Li et al., EMNLP 2024).

Each answer is cut into the same number of parts at sentence or paragraph
boundaries, with the cut points placed at about the same fraction of each
answer's length, and the parts are shown interleaved: A part 1, B part 1, A
part 2, and so on. A fenced code block is never cut.

NOTE: the paper's last step, which searches cut points for the most similar
part pairs when the length-aligned merge is still inconsistent, is not
implemented; such a pair stays a tie.
"""

from __future__ import annotations

import re

# A boundary after sentence-ending punctuation plus spaces, or at a blank line.
_BOUNDARY = re.compile(r"(?<=[.!?])[ \t]+(?=\S)|\n\s*\n")
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)


def units(text: str) -> list[str]:
    """Cut a text into sentences and paragraphs that join back to the exact text; code fences stay whole."""
    pieces: list[str] = []
    position = 0
    for fence in _FENCE.finditer(text):
        pieces.extend(_prose_units(text[position : fence.start()]))
        _append_to_last_or_new(pieces, fence.group(0))
        position = fence.end()
    pieces.extend(_prose_units(text[position:]))
    return [piece for piece in pieces if piece]


def _prose_units(text: str) -> list[str]:
    pieces = []
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        pieces.append(text[start : boundary.end()])
        start = boundary.end()
    pieces.append(text[start:])
    return pieces


def _append_to_last_or_new(pieces: list[str], fence: str) -> None:
    # A fence that continues a line (no newline before it) belongs to that sentence.
    if pieces and pieces[-1] and not pieces[-1].endswith("\n"):
        pieces[-1] += fence
    else:
        pieces.append(fence)


def split_aligned(text: str, parts: int) -> list[str]:
    """Cut ``text`` into ``parts`` pieces at unit boundaries, each cut nearest to i/parts of the length.

    Returns fewer pieces when the text has fewer units than ``parts``.
    """
    pieces = units(text)
    if len(pieces) <= parts:
        return pieces
    ends = []
    total = 0
    for piece in pieces:
        total += len(piece)
        ends.append(total)
    cuts: list[int] = []
    for part in range(1, parts):
        target = total * part / parts
        low = cuts[-1] + 1 if cuts else 1
        high = len(pieces) - (parts - part)  # leave at least one unit for each later part
        best = min(range(low, high + 1), key=lambda cut: abs(ends[cut - 1] - target))
        cuts.append(best)
    bounds = [0, *cuts, len(pieces)]
    return ["".join(pieces[bounds[i] : bounds[i + 1]]) for i in range(parts)]


def interleave(parts_a: list[str], parts_b: list[str]) -> str:
    """Return the parts of two answers in turn, each under a header such as ``[Answer A, part 1 of 3]``."""
    count = len(parts_a)
    blocks = []
    for index in range(count):
        for label, part in (("A", parts_a[index]), ("B", parts_b[index])):
            blocks.append(f"[Answer {label}, part {index + 1} of {count}]\n{part.strip()}")
    return "\n\n".join(blocks)


def aligned_parts(first: str, second: str, parts: int) -> tuple[list[str], list[str]] | None:
    """Return both answers cut into the same number of parts (at most ``parts``), or None below two parts."""
    count = min(parts, len(units(first)), len(units(second)))
    if count < 2:
        return None
    return split_aligned(first, count), split_aligned(second, count)
