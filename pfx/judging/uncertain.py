"""Pick the judged records a person should look at: the top share by verdict entropy.

A record whose replies all failed to parse has no entropy and ranks first;
records with entropy 0 (every reply agreed) are never picked. The picker
keeps every candidate's serialized record until the end of the run, because
the top share is known only then.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from pfx.io import RecordWriter


def uncertainty(record: dict[str, Any]) -> float:
    """Return the priority of a judged record for review: its entropy, infinity when it has no verdict."""
    judge = record.get("judge") or {}
    if "comparisons" in judge:
        values = [_comparison_uncertainty(entry) for entry in judge["comparisons"]]
        return max(values, default=0.0)
    return _comparison_uncertainty(judge)


def _comparison_uncertainty(entry: dict[str, Any]) -> float:
    if entry.get("winner") is None:
        return math.inf
    return float(entry.get("entropy") or 0.0)


class UncertainPicker:
    """Collect judged records and write the ``share`` with the highest uncertainty to a file."""

    def __init__(self, share: float):
        self.share = share
        self.seen = 0
        # NOTE: keeps each candidate (entropy > 0 or no verdict) as JSON bytes until the end of the run.
        self._candidates: list[tuple[float, int, bytes]] = []

    def add(self, record: dict[str, Any]) -> None:
        priority = uncertainty(record)
        if priority > 0:
            self._candidates.append((priority, self.seen, orjson.dumps(record)))
        self.seen += 1

    def write(self, path: str) -> int:
        """Write the picked records in input order; return how many."""
        limit = math.ceil(self.share * self.seen)
        picked = sorted(self._candidates, key=lambda entry: (-entry[0], entry[1]))[:limit]
        picked.sort(key=lambda entry: entry[1])
        with RecordWriter(path) as writer:
            for _, _, line in picked:
                writer.write(orjson.loads(line))
        return len(picked)
