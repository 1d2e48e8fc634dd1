"""Figures of training metrics, answer lengths and scores.

Each plot kind collects values from records (``add`` raises ``RecordError``
for a record that does not fit) and then draws them on a matplotlib figure.
matplotlib is the optional ``plot`` extra: this module imports it only in
``save_figure``, so reading and checking the input needs no matplotlib and
no torch.

Kinds (``PLOT_KINDS``):
  metrics  train-dpo metrics JSONL: loss, implicit rewards, reward accuracy
           and learning rate over ``step``.
  stats    the JSON object ``pfx stats`` prints: length percentiles per
           field, length bias, and score and margin counts.
  lengths  pair, unpaired or list records: histograms of answer lengths in
           words, and of the chosen-minus-rejected length difference.
  scores   records that pfx score or pfx label scored (a reward, an implicit
           reward or a log-prob per answer): score histograms, and the
           margin histogram for pairs.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pfx.errors import RecordError, RuntimeFailure
from pfx.records import record_kind, text_of, validate
from pfx.scoring import FIELDS as ANSWER_FIELDS

# Per-answer score fields in auto-detection order: a reward first, then what pfx score --implicit and --logps add.
SCORE_FIELD_NAMES = ("score", "implicit_reward", "logps", "ref_logps")

INSTALL_HINT = "pip install 'pfx[plot]'"


def _number(record: dict[str, Any], key: str, path: str | None = None) -> float | None:
    """Return ``record[key]`` as a float, None when absent or null; raise on anything but a number.

    ``path`` is the field's name in messages when ``record`` is nested (``lengths.chosen.p50``).
    """
    name = path or key
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"field '{name}': expected a number, got {value!r}", name, f"invalid {name}")
    if math.isnan(value):
        raise RecordError(f"field '{name}': expected a number, got NaN", name, f"NaN {name}")
    return float(value)


def _object(record: dict[str, Any], key: str, path: str | None = None) -> dict[str, Any] | None:
    """Return ``record[key]`` when it is a JSON object, None when absent or null; raise otherwise."""
    name = path or key
    value = record.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise RecordError(f"field '{name}': expected an object or null, got {value!r}", name, f"invalid {name}")


class Plot:
    """Values collected from records for one figure."""

    description: ClassVar[str]

    @staticmethod
    def matches(record: dict[str, Any]) -> bool:
        """True when ``record`` has the shape this kind plots (used by ``--kind auto``)."""
        raise NotImplementedError

    def add(self, record: dict[str, Any], source: str = "") -> None:
        """Collect one record; ``source`` is its input file, for kinds that draw each file apart."""
        raise NotImplementedError

    def panels(self) -> int:
        """Number of axes ``draw`` needs (at least one)."""
        raise NotImplementedError

    def draw(self, axes: list[Any], bins: int) -> None:
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        """Named counts for the run summary, such as values present but not drawn."""
        return {}


# -- metrics ------------------------------------------------------------------

# Panel title -> the metric keys drawn in it, in the key names train-dpo and TRL log.
METRIC_PANELS: dict[str, tuple[str, ...]] = {
    "loss": ("loss",),
    "implicit rewards": ("rewards/chosen", "rewards/rejected", "rewards/margins"),
    "reward accuracy": ("rewards/accuracies", "rewards/ties"),
    "log-probs": ("logps/chosen", "logps/rejected"),
    "learning rate": ("learning_rate",),
    "gradient norm": ("grad_norm",),
}
METRIC_KEYS = tuple(key for keys in METRIC_PANELS.values() for key in keys)


@dataclass
class MetricsPlot(Plot):
    """Training metrics over steps, one panel per group in ``METRIC_PANELS``, one line per input file."""

    description: ClassVar[str] = "train-dpo metrics (loss, rewards/*, learning_rate by step)"
    # Metric key -> input file -> (step, value) points; each file is one training run.
    series: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    # Metric keys present with a null value, which train-dpo writes for a non-finite number.
    nulls: Counter[str] = field(default_factory=Counter)

    @staticmethod
    def matches(record: dict[str, Any]) -> bool:
        return "step" in record and any(key in record for key in METRIC_KEYS)

    def add(self, record: dict[str, Any], source: str = "") -> None:
        if "step" not in record:
            raise RecordError(
                f"missing field 'step' (a metrics record needs 'step' and at least one of {', '.join(METRIC_KEYS)})",
                "step",
                "missing step",
            )
        step = _number(record, "step")
        if step is None:
            raise RecordError("field 'step' is null, expected the optimizer step number", "step", "missing step")
        values = {key: _number(record, key) for key in METRIC_KEYS}
        if all(value is None for value in values.values()):
            raise RecordError(
                f"no metric to plot (expected at least one of {', '.join(METRIC_KEYS)}; "
                f"fields present: {', '.join(record)})",
                None,
                "no metric",
            )
        if source not in self.sources:
            self.sources.append(source)
        for key, value in values.items():
            if value is not None:
                self.series.setdefault(key, {}).setdefault(source, []).append((step, value))
            elif key in record:
                self.nulls[key] += 1

    def counts(self) -> dict[str, int]:
        return {f"null {key} (not drawn)": n for key, n in self.nulls.items()}

    def _filled_panels(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(title, keys) for title, keys in METRIC_PANELS.items() if any(key in self.series for key in keys)]

    def panels(self) -> int:
        return max(1, len(self._filled_panels()))

    def draw(self, axes: list[Any], bins: int) -> None:
        from matplotlib.ticker import MaxNLocator

        several_runs = len(self.sources) > 1
        names = _short_names(self.sources)
        for ax, (title, keys) in zip(axes, self._filled_panels()):
            for key in keys:
                for source, points in self.series.get(key, {}).items():
                    points = sorted(points)
                    label = f"{names[source]}: {key}" if several_runs else key
                    ax.plot([step for step, _ in points], [value for _, value in points], marker=".", label=label)
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if title == "learning rate":
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            if title == "reward accuracy":
                ax.set_ylim(-0.05, 1.05)
            if title == "implicit rewards":
                ax.axhline(0.0, color="grey", linewidth=0.5)
            if len(keys) > 1 or several_runs:
                ax.legend(fontsize="small")


def _short_names(sources: list[str]) -> dict[str, str]:
    """Map each input path to its file name, or keep the paths when two file names are the same."""
    names = {source: os.path.basename(source) or source for source in sources}
    if len(set(names.values())) < len(names):
        return {source: source for source in sources}
    return names


# -- lengths ------------------------------------------------------------------


def word_count(value: Any) -> int:
    """Length of an answer in whitespace-separated words (all message contents of a conversation)."""
    return len(text_of(value).split())


@dataclass
class LengthsPlot(Plot):
    """Answer lengths in words by input file and role (chosen, rejected, ...), and the pair length difference."""

    description: ClassVar[str] = "answer lengths in words of pair, unpaired or list records"
    lengths: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    differences: dict[str, list[int]] = field(default_factory=dict)

    @staticmethod
    def matches(record: dict[str, Any]) -> bool:
        return record_kind(record) in ("pair", "unpaired", "list")

    def add(self, record: dict[str, Any], source: str = "") -> None:
        kind = validate(record, kinds=("pair", "unpaired", "list"))
        if kind == "pair":
            chosen, rejected = word_count(record["chosen"]), word_count(record["rejected"])
            self.lengths.setdefault((source, "chosen"), []).append(chosen)
            self.lengths.setdefault((source, "rejected"), []).append(rejected)
            self.differences.setdefault(source, []).append(chosen - rejected)
        elif kind == "unpaired":
            role = "desirable" if record["label"] else "undesirable"
            self.lengths.setdefault((source, role), []).append(word_count(record["completion"]))
        else:
            self.lengths.setdefault((source, "completions"), []).extend(word_count(c) for c in record["completions"])

    def panels(self) -> int:
        return 2 if self.differences else 1

    def draw(self, axes: list[Any], bins: int) -> None:
        _draw_histograms(axes[0], _by_label(self.lengths), bins, "answer length", "words")
        if self.differences:
            _draw_difference(axes[1], _by_label(self.differences), bins, "chosen - rejected length", "words")


# -- scores -------------------------------------------------------------------


# Log-prob fields of pfx score hold {"sum", "mean", "tokens"} per answer; FIELD draws the sum, FIELD.mean the mean.
LOGPROB_FIELDS = ("logps", "ref_logps")
# --score-field choices, from the per-answer fields that pfx score and pfx label write, in auto-detection order.
SCORE_FIELDS = (*SCORE_FIELD_NAMES, *(f"{name}.mean" for name in LOGPROB_FIELDS))


@dataclass
class ScoresPlot(Plot):
    """Histograms of a per-answer score by role, and the chosen-minus-rejected margin of pairs.

    The score is ``field_name``: a reward (``score``), an implicit reward or a log-prob from
    pfx score or pfx label; None picks the first one the first record has.
    """

    description: ClassVar[str] = ("scores from pfx score or pfx label (reward, implicit reward or log-prob; "
                                  "see --score-field) and pair margins")
    field_name: str | None = None
    scores: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    margins: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def matches(record: dict[str, Any]) -> bool:
        return _detect_score_field(record) is not None

    def add(self, record: dict[str, Any], source: str = "") -> None:
        kind = validate(record, kinds=("pair", "unpaired", "list"))
        if self.field_name is None:
            self.field_name = _detect_score_field(record)
            if self.field_name is None:
                raise RecordError(f"no score to plot (expected one of the fields pfx score writes: "
                                  f"{', '.join(SCORE_FIELD_NAMES)})", None, "no score")
        # A pair holds ONE_chosen and ONE_rejected, an unpaired record ONE, a list record MANY.
        single, plural = ANSWER_FIELDS[self.field_name.partition(".")[0]]
        if kind == "pair":
            chosen = self._value(record, f"{single}_chosen")
            rejected = self._value(record, f"{single}_rejected")
            self.scores.setdefault((source, "chosen"), []).append(chosen)
            self.scores.setdefault((source, "rejected"), []).append(rejected)
            self.margins.setdefault(source, []).append(chosen - rejected)
        elif kind == "unpaired":
            role = "desirable" if record["label"] else "undesirable"
            self.scores.setdefault((source, role), []).append(self._value(record, single))
        else:
            values = record.get(plural)
            if not isinstance(values, list):
                raise RecordError(f"missing field '{plural}' (a list record needs it for a {self.field_name} plot)",
                                  plural, f"missing {plural}")
            answers = self.scores.setdefault((source, "completions"), [])
            for index, value in enumerate(values):
                if value is not None:
                    answers.append(self._value({plural: value}, plural, f"{plural}[{index}]"))

    def _value(self, record: dict[str, Any], key: str, path: str | None = None) -> float:
        """Return one answer's score; a log-prob object gives its sum, or its mean for FIELD.mean."""
        assert self.field_name is not None
        name = path or key
        base, _, statistic = self.field_name.partition(".")
        if base in LOGPROB_FIELDS:
            logprob = _object(record, key, name)
            value = None if logprob is None else _number(logprob, statistic or "sum", f"{name}.{statistic or 'sum'}")
        else:
            value = _number(record, key, name)
        if value is None:
            raise RecordError(f"missing field '{name}' (needed for a {self.field_name} plot)", name, f"missing {name}")
        return value

    def panels(self) -> int:
        return 2 if self.margins else 1

    def draw(self, axes: list[Any], bins: int) -> None:
        name = self.field_name or "score"
        _draw_histograms(axes[0], _by_label(self.scores), bins, name, name)
        if self.margins:
            _draw_difference(axes[1], _by_label(self.margins), bins, f"margin: {name} of chosen - rejected", name)


def _detect_score_field(record: dict[str, Any]) -> str | None:
    """Return the first score field in SCORE_FIELD_NAMES that the record has, or None."""
    for name in SCORE_FIELD_NAMES:
        one, many = ANSWER_FIELDS[name]
        if any(record.get(key) is not None for key in (f"{one}_chosen", one, many)):
            return name
    return None


# -- pfx stats output ---------------------------------------------------------

# Length statistics of a `pfx stats` object drawn as bars, and the text fields it measures.
LENGTH_STATISTICS = ("p50", "mean", "p90", "p99", "max")
STATS_TEXT_FIELDS = ("prompt", "chosen", "rejected", "completion", "completions")
# Score fields of a `pfx stats` object whose "values" (value -> count) are drawn; "margin" gets its own panel.
STATS_SCORE_FIELDS = ("chosen", "rejected", "completion", "list")


@dataclass
class StatsPlot(Plot):
    """The one JSON object that ``pfx stats`` prints: length percentiles, length bias and score counts."""

    description: ClassVar[str] = "the JSON object of pfx stats (length percentiles, length bias, score counts)"
    objects: int = 0
    unit: str = "characters"
    lengths: dict[str, dict[str, float | None]] = field(default_factory=dict)
    bias: dict[str, float | None] = field(default_factory=dict)
    score_counts: dict[str, dict[float, int]] = field(default_factory=dict)
    margin_counts: dict[float, int] = field(default_factory=dict)

    @staticmethod
    def matches(record: dict[str, Any]) -> bool:
        return "lengths" in record and "length_bias" in record

    def add(self, record: dict[str, Any], source: str = "") -> None:
        if self.objects:
            raise RecordError("a stats plot draws one pfx stats object, and this is the second; plot each file on its own",
                              None, "second stats object")
        if "lengths" not in record:
            raise RecordError("missing field 'lengths' (expected the JSON object that pfx stats prints)", "lengths",
                              "missing lengths")
        self.objects += 1
        lengths = _object(record, "lengths") or {}
        self.unit = str(lengths.get("unit") or "characters")
        for name in STATS_TEXT_FIELDS:
            summary = _object(lengths, name, f"lengths.{name}")
            if summary is not None:
                self.lengths[name] = {stat: _number(summary, stat, f"lengths.{name}.{stat}") for stat in LENGTH_STATISTICS}
        bias = _object(record, "length_bias") or {}
        for key in ("pairs", "chosen_longer", "rejected_longer", "equal_length", "chosen_longer_share"):
            self.bias[key] = _number(bias, key, f"length_bias.{key}")
        scores = _object(record, "scores") or {}
        for name in (*STATS_SCORE_FIELDS, "margin"):
            summary = _object(scores, name, f"scores.{name}") or {}
            counts = _value_counts(summary, f"scores.{name}.values")
            if counts and name == "margin":
                self.margin_counts = counts
            elif counts:
                self.score_counts[name] = counts

    def _panel_names(self) -> list[str]:
        names = ["lengths"]
        if self.bias.get("pairs"):
            names.append("length bias")
        if self.score_counts:
            names.append("scores")
        if self.margin_counts:
            names.append("margins")
        return names

    def panels(self) -> int:
        return len(self._panel_names())

    def draw(self, axes: list[Any], bins: int) -> None:
        for ax, name in zip(axes, self._panel_names()):
            if name == "lengths":
                self._draw_lengths(ax)
            elif name == "length bias":
                self._draw_bias(ax)
            elif name == "scores":
                _draw_counts(ax, self.score_counts, "score", "answers")
            else:
                _draw_counts(ax, {"margin": self.margin_counts}, "margin: score_chosen - score_rejected", "pairs")
                ax.axvline(0.0, color="black", linewidth=0.8)

    def _draw_lengths(self, ax: Any) -> None:
        ax.set_title(f"length in {self.unit}")
        if not self.lengths:
            ax.text(0.5, 0.5, "no texts measured", ha="center", va="center", transform=ax.transAxes)
            return
        width = 0.8 / len(LENGTH_STATISTICS)
        for index, stat in enumerate(LENGTH_STATISTICS):
            positions = [field_index + (index - (len(LENGTH_STATISTICS) - 1) / 2) * width
                         for field_index in range(len(self.lengths))]
            heights = [summary[stat] or 0.0 for summary in self.lengths.values()]
            ax.bar(positions, heights, width, label=stat)
        ax.set_xticks(range(len(self.lengths)), list(self.lengths))
        ax.set_ylabel(self.unit)
        ax.legend(fontsize="small")

    def _draw_bias(self, ax: Any) -> None:
        labels = ("chosen longer", "rejected longer", "equal")
        counts = [self.bias.get(key) or 0.0 for key in ("chosen_longer", "rejected_longer", "equal_length")]
        ax.bar(labels, counts, color=("tab:green", "tab:red", "tab:grey"))
        share = self.bias.get("chosen_longer_share")
        pairs = int(self.bias.get("pairs") or 0)
        title = f"chosen longer in {share:.0%} of {pairs} pairs" if share is not None else f"length bias, {pairs} pairs"
        ax.set_title(title)
        ax.set_ylabel("pairs")


def _value_counts(summary: dict[str, Any], path: str) -> dict[float, int]:
    """Read the ``values`` histogram (value as a string -> count) of a pfx stats score summary."""
    values = summary.get("values")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise RecordError(f"field '{path}': expected an object of value -> count, got {values!r}", path, f"invalid {path}")
    counts = {}
    for key, count in values.items():
        try:
            value = float(key)
        except ValueError:
            raise RecordError(f"field '{path}': key {key!r} is not a number", path, f"invalid {path}") from None
        counted = _number(values, key, f"{path}.{key}")
        counts[value] = int(counted or 0)
    return counts


def _draw_counts(ax: Any, groups: dict[str, dict[float, int]], title: str, unit: str) -> None:
    """Bars of value -> count, one bar per group at each value, side by side."""
    distinct = sorted({value for counts in groups.values() for value in counts})
    spacing = min((b - a for a, b in zip(distinct, distinct[1:])), default=1.0)
    width = 0.8 * spacing / len(groups)
    for index, (role, counts) in enumerate(groups.items()):
        offset = (index - (len(groups) - 1) / 2) * width
        ax.bar([value + offset for value in counts], list(counts.values()), width, alpha=0.8, label=role)
    ax.set_title(title)
    ax.set_xlabel(title.split(":")[0])
    ax.set_ylabel(unit)
    ax.legend(fontsize="small")


def _by_label(groups: dict[tuple[str, str], list] | dict[str, list]) -> dict[str, list]:
    """Name each group for a legend: its role, led by the file name when the values come from several files.

    Keys are (input file, role) pairs, or input files alone for per-pair differences.
    """
    sources = list(dict.fromkeys(key[0] if isinstance(key, tuple) else key for key in groups))
    names = _short_names(sources)
    labelled = {}
    for key, values in groups.items():
        source, role = key if isinstance(key, tuple) else (key, "")
        if len(sources) > 1:
            labelled[f"{names[source]}: {role}" if role else names[source]] = values
        else:
            labelled[role or "pairs"] = values
    return labelled


def _shared_edges(groups: dict[str, list], bins: int) -> list[float]:
    """Bin edges over the values of every group, so overlaid histograms line up."""
    every_value = [value for values in groups.values() for value in values]
    low, high = (min(every_value), max(every_value)) if every_value else (0.0, 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return [low + (high - low) * index / bins for index in range(bins + 1)]


def _draw_histograms(ax: Any, groups: dict[str, list], bins: int, title: str, unit: str) -> None:
    """Overlaid histograms, one per group, each labelled with its mean."""
    edges = _shared_edges(groups, bins)
    for label, values in groups.items():
        ax.hist(values, bins=edges, alpha=0.5, label=f"{label} (mean {sum(values) / len(values):.3g})")
    ax.set_title(title)
    ax.set_xlabel(unit)
    ax.set_ylabel("answers")
    _integer_counts(ax)
    if groups:
        ax.legend(fontsize="small")


def _draw_difference(ax: Any, groups: dict[str, list], bins: int, title: str, unit: str) -> None:
    """Histograms of per-pair differences, with zero marked and each group's share of positive pairs."""
    edges = _shared_edges(groups, bins)
    for label, values in groups.items():
        positive = sum(1 for value in values if value > 0) / len(values)
        color = "tab:green" if len(groups) == 1 else None
        ax.hist(values, bins=edges, color=color, alpha=0.6,
                label=f"{label}: > 0 in {positive:.0%} of {len(values)} pairs")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_title(title)
    ax.set_xlabel(unit)
    ax.set_ylabel("pairs")
    _integer_counts(ax)
    ax.legend(fontsize="small")


def _integer_counts(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


# One registry: --kind choices, auto-detection order and help text all come from it.
PLOT_KINDS: dict[str, type[Plot]] = {
    "metrics": MetricsPlot,
    "stats": StatsPlot,
    "scores": ScoresPlot,
    "lengths": LengthsPlot,
}


def detect_kind(record: dict[str, Any]) -> str:
    """Return the first kind in ``PLOT_KINDS`` whose shape ``record`` has; raise RecordError if none fits."""
    for name, plot_class in PLOT_KINDS.items():
        if plot_class.matches(record):
            return name
    raise RecordError(
        "cannot tell what to plot from this record (expected train-dpo metrics with 'step' and 'loss', "
        "scored records, or pair/unpaired/list records; "
        f"fields present: {', '.join(record) or 'none'}); pass --kind to choose",
        None,
        "unknown record shape",
    )


# -- drawing ------------------------------------------------------------------


def require_matplotlib() -> None:
    """Raise RuntimeFailure with the install command when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeFailure(f"matplotlib is not installed; install the plot extra with: {INSTALL_HINT}") from None


def save_figure(plot: Plot | None, path: str, title: str, bins: int) -> None:
    """Draw ``plot`` (None: no records) and write it to ``path`` as PNG, atomically.

    The figure goes to a temporary file beside ``path`` that replaces it only when
    complete, so a failed run never leaves a half-written PNG that Make would
    take as up to date.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = plot.panels() if plot is not None else 1
    columns = 1 if panels == 1 else 2
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(6.0 * columns, 4.0 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for unused in axes[panels:]:
        unused.set_visible(False)
    if plot is None:
        axes[0].text(0.5, 0.5, "no records", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    else:
        plot.draw(axes[:panels], bins)
    figure.suptitle(title)

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        figure.savefig(temporary, format="png", dpi=100)
        os.replace(temporary, path)
    except OSError as exc:
        raise RuntimeFailure(f"{path}: cannot write the figure: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
