"""Streaming summaries whose memory does not grow with the number of records.

``LengthDistribution`` keeps one counter per distinct length, so its exact
percentiles cost memory in the longest length, not in the record count.
``ScoreSummary`` keeps running moments and, while there are few distinct
values (rating scales), their counts.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

# z for a two-sided 95% interval: the 0.975 quantile of the standard normal.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> list[float] | None:
    """Return the Wilson score interval [low, high] of a binomial proportion, or None for zero trials.

    Unlike the normal-approximation interval, it stays inside 0..1 and is
    usable for small counts.
    """
    if trials == 0:
        return None
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return [round(max(0.0, centre - half_width), 6), round(min(1.0, centre + half_width), 6)]


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


class LengthDistribution:
    """Exact distribution of non-negative integer lengths (characters or tokens)."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0
        self.n = 0

    def add(self, length: int) -> None:
        self.counts[length] += 1
        self.total += length
        self.n += 1

    def percentile(self, fraction: float) -> int:
        """Return the nearest-rank percentile: the smallest length with at least ``fraction`` of values at or below it."""
        rank = max(1, math.ceil(fraction * self.n))
        seen = 0
        for length in sorted(self.counts):
            seen += self.counts[length]
            if seen >= rank:
                return length
        raise ValueError("percentile of an empty distribution")

    def summary(self) -> dict[str, Any] | None:
        if not self.n:
            return None
        return {
            "count": self.n,
            "mean": round(self.total / self.n, 3),
            "min": min(self.counts),
            "p50": self.percentile(0.5),
            "p90": self.percentile(0.9),
            "p99": self.percentile(0.99),
            "max": max(self.counts),
        }


class ScoreSummary:
    """Running count, mean, standard deviation, min and max of numbers, and value counts while few are distinct."""

    # Rating scales have a handful of values, but continuous reward-model scores stop being counted past this.
    MAX_DISTINCT = 100

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.values: Counter[float] | None = Counter()

    def add(self, value: float) -> None:
        # Welford's update keeps the variance exact without storing the values.
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (value - self.mean)
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if self.values is not None:
            self.values[value] += 1
            if len(self.values) > self.MAX_DISTINCT:
                self.values = None

    def summary(self) -> dict[str, Any] | None:
        if not self.n:
            return None
        values = None
        if self.values is not None:
            values = {_number_key(value): count for value, count in sorted(self.values.items())}
        return {
            "count": self.n,
            "mean": round(self.mean, 6),
            "std": round(math.sqrt(self._m2 / self.n), 6),
            "min": self.min,
            "max": self.max,
            "values": values,
        }


def _number_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def cohen_kappa(table: list[list[int]]) -> float | None:
    """Return Cohen's kappa of a square contingency table (rows: one labeling, columns: the other).

    kappa = (p_o - p_e) / (1 - p_e), with p_o the share on the diagonal and
    p_e the share expected by chance from the row and column totals. None when
    the table is empty or chance agreement is already 1.
    """
    n = sum(sum(row) for row in table)
    if n == 0:
        return None
    observed = sum(table[i][i] for i in range(len(table))) / n
    rows = [sum(row) for row in table]
    columns = [sum(row[j] for row in table) for j in range(len(table))]
    expected = sum(rows[i] * columns[i] for i in range(len(table))) / (n * n)
    if expected == 1:
        return None
    return round((observed - expected) / (1 - expected), 6)
