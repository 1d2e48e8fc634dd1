"""Score the answers of pair, list and unpaired records with models.

A ``Scorer`` wraps one model in one role: a reward model (``score``), a policy
(``logps``) or a reference (``ref_logps``, which also yields the implicit
reward ``β·(logπ − logπ_ref)``). ``score_records`` streams records through the
scorers in chunks and adds one field per answer:

| role       | pair                                  | list              | unpaired          |
|------------|---------------------------------------|-------------------|-------------------|
| reward     | score_chosen, score_rejected          | scores            | score             |
| policy     | logps_chosen, logps_rejected          | logps             | logps             |
| reference  | ref_logps_chosen, ref_logps_rejected  | ref_logps         | ref_logps         |
| implicit   | implicit_reward_chosen, ..._rejected  | implicit_rewards  | implicit_reward   |

A log-prob value is ``{"sum", "mean", "tokens"}``: the summed log-prob of the
answer tokens, the mean per token, and the number of answer tokens. This
module imports torch only through the model modules, inside the scorers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from pfx.errors import RecordError, RuntimeFailure
from pfx.records import Kind, validate

ANSWER_KINDS: tuple[Kind, ...] = ("pair", "list", "unpaired")

# Field name -> (name for one answer, name for a list of answers). Pairs use <one>_chosen and <one>_rejected.
FIELDS: dict[str, tuple[str, str]] = {
    "score": ("score", "scores"),
    "logps": ("logps", "logps"),
    "ref_logps": ("ref_logps", "ref_logps"),
    "implicit_reward": ("implicit_reward", "implicit_rewards"),
}


def answer_sides(record: dict[str, Any], kind: str) -> list[str]:
    """Return the field names of a record's answers, as errors and counts name them."""
    if kind == "pair":
        return ["chosen", "rejected"]
    if kind == "list":
        return [f"completions[{index}]" for index in range(len(record["completions"]))]
    return ["completion"]


def answers_of(record: dict[str, Any], kind: str) -> list[Any]:
    if kind == "pair":
        return [record["chosen"], record["rejected"]]
    if kind == "list":
        return list(record["completions"])
    return [record["completion"]]


def set_answer_values(record: dict[str, Any], kind: str, name: str, values: Sequence[Any]) -> None:
    """Store one value per answer under the field names of ``FIELDS[name]``."""
    one, many = FIELDS[name]
    if kind == "pair":
        record[f"{one}_chosen"], record[f"{one}_rejected"] = values
    elif kind == "list":
        record[many] = list(values)
    else:
        record[one] = values[0]


def get_answer_values(record: dict[str, Any], kind: str, name: str) -> list[Any] | None:
    """Return the values stored by ``set_answer_values``, or None when the record lacks them."""
    one, many = FIELDS[name]
    if kind == "pair":
        chosen, rejected = record.get(f"{one}_chosen"), record.get(f"{one}_rejected")
        return None if chosen is None or rejected is None else [chosen, rejected]
    key = many if kind == "list" else one
    if record.get(key) is None:
        return None
    return list(record[key]) if kind == "list" else [record[key]]


def logp_value(logp: Any) -> dict[str, Any]:
    """Return the record form of an ``AnswerLogp``."""
    return {"sum": logp.sum, "mean": logp.mean, "tokens": logp.count}


# -- scorers -------------------------------------------------------------------


@dataclass
class Scorer:
    """One model in one role, with its own tokenizer and ``Encoder``.

    ``kind`` is ``reward`` (a sequence-classification model) or ``logps`` (a
    causal LM); ``field`` is the ``FIELDS`` entry its values go to.
    """

    kind: str
    field: str
    model: Any
    tokenizer: Any
    encoder: Any
    batch_size: int
    name: str = ""

    def encode_many(self, records: Sequence[dict[str, Any]], kinds: Sequence[str]
                    ) -> list[tuple[list[int], list[list[int]]] | RecordError]:
        """Encode many records with one tokenizer call; an invalid record gives its ``RecordError``."""
        return self.encoder.encode_many([(record["prompt"], answers_of(record, kind), answer_sides(record, kind))
                                         for record, kind in zip(records, kinds)])

    def run(self, encoded: Sequence[tuple[list[int], list[list[int]]]], kinds: Sequence[str]) -> list[list[Any]]:
        """Return one list of values (one per answer) for each encoded record."""
        if self.kind == "reward":
            return self._run_reward(encoded)
        return self._run_logps(encoded, kinds)

    def _run_reward(self, encoded: Sequence[tuple[list[int], list[list[int]]]]) -> list[list[Any]]:
        from pfx.model.logps import merge_repeats
        from pfx.model.rewards import reward_scores

        # Pairs made from one list repeat its answers: each distinct answer to a prompt is scored once.
        merged, places = merge_repeats(encoded)
        sequences = [prompt + answer for prompt, answers in merged for answer in answers]
        scores = _unflatten(reward_scores(self.model, sequences, self.batch_size), [len(answers) for _, answers in merged])
        return [[scores[group][answer] for answer in answers] for group, answers in places]

    def _run_logps(self, encoded: Sequence[tuple[list[int], list[list[int]]]], kinds: Sequence[str]) -> list[list[Any]]:
        from pfx.model.logps import group_logps

        # Every answer of a record (chosen and rejected, or all completions) runs on its prompt's cache.
        return [[logp_value(logp) for logp in values] for values in group_logps(self.model, encoded, self.batch_size)]


def _unflatten(flat: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    out, start = [], 0
    for size in sizes:
        out.append(list(flat[start:start + size]))
        start += size
    return out


def implicit_rewards(policy: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]], beta: float) -> list[float]:
    """Return β·(logπ(y|x) − logπ_ref(y|x)) per answer, from summed log-probs."""
    return [beta * (mine["sum"] - ref["sum"]) for mine, ref in zip(policy, reference)]


# -- streaming --------------------------------------------------------------------


@dataclass
class Pending:
    """A record waiting in a chunk, with what each scorer encoded for it."""

    item: Any
    record: dict[str, Any]
    kind: str
    encoded: list[tuple[list[int], list[list[int]]]] = field(default_factory=list)


def score_records(
    items: Iterable[tuple[Any, dict[str, Any]]],
    scorers: Sequence[Scorer],
    beta: float,
    chunk_size: int,
    on_reject: Callable[[Any, RecordError], None],
    kinds: tuple[Kind, ...] = ANSWER_KINDS,
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Yield ``(item, scored record)`` in input order; invalid records go to ``on_reject``.

    ``items`` are ``(item, record)`` with ``item`` anything the caller needs
    back (the input line). Records are scored ``chunk_size`` at a time, so
    each chunk is sorted by length inside the model calls. ``kinds`` are the
    record kinds accepted; others are rejected.
    """
    chunk: list[tuple[Any, dict[str, Any]]] = []
    for item, record in items:
        chunk.append((item, record))
        if len(chunk) >= chunk_size:
            yield from _score_chunk(_prepare(chunk, scorers, on_reject, kinds), scorers, beta)
            chunk = []
    if chunk:
        yield from _score_chunk(_prepare(chunk, scorers, on_reject, kinds), scorers, beta)


def _prepare(chunk: list[tuple[Any, dict[str, Any]]], scorers: Sequence[Scorer],
             on_reject: Callable[[Any, RecordError], None], kinds: tuple[Kind, ...]) -> list[Pending]:
    """Validate and encode a chunk of records; pass the invalid ones to ``on_reject`` in input order.

    Each scorer encodes the whole chunk in one batch, but only the records that
    every earlier scorer accepted, so its encoder counts the same events as
    when records were encoded one at a time.
    """
    errors: list[RecordError | None] = [None] * len(chunk)
    pending: list[Pending | None] = []
    for index, (item, record) in enumerate(chunk):
        try:
            pending.append(Pending(item, record, validate(record, kinds=kinds)))
        except RecordError as error:
            errors[index] = error
            pending.append(None)

    for scorer in scorers:
        positions = [index for index, entry in enumerate(pending) if entry is not None]
        entries = [pending[index] for index in positions]
        results = scorer.encode_many([entry.record for entry in entries], [entry.kind for entry in entries])
        for index, entry, result in zip(positions, entries, results):
            if isinstance(result, RecordError):
                errors[index] = result
                pending[index] = None
            else:
                entry.encoded.append(result)

    for (item, _), error in zip(chunk, errors):
        if error is not None:
            on_reject(item, error)
    return [entry for entry in pending if entry is not None]


def _score_chunk(chunk: list[Pending], scorers: Sequence[Scorer], beta: float) -> Iterator[tuple[Any, dict[str, Any]]]:
    if not chunk:
        return
    kinds = [pending.kind for pending in chunk]
    values_by_field: dict[str, list[list[Any]]] = {}
    for position, scorer in enumerate(scorers):
        values_by_field[scorer.field] = scorer.run([pending.encoded[position] for pending in chunk], kinds)

    for index, pending in enumerate(chunk):
        record = dict(pending.record)
        for name, values in values_by_field.items():
            if name == "score":
                _keep_source_scores(record, pending.kind)
            set_answer_values(record, pending.kind, name, values[index])
        if "logps" in values_by_field and "ref_logps" in values_by_field:
            rewards = implicit_rewards(values_by_field["logps"][index], values_by_field["ref_logps"][index], beta)
            set_answer_values(record, pending.kind, "implicit_reward", rewards)
        yield pending.item, record


def _keep_source_scores(record: dict[str, Any], kind: str) -> None:
    """Move scores the record already has to ``meta.source_scores`` before reward-model scores replace them."""
    existing = get_answer_values(record, kind, "score")
    if existing is None:
        return
    meta = dict(record["meta"]) if isinstance(record.get("meta"), dict) else {}
    # An unpaired record has one score; pairs and lists keep their list of scores.
    meta["source_scores"] = existing[0] if kind == "unpaired" else existing
    record["meta"] = meta


# -- loading and resuming ---------------------------------------------------------


def load_scorer(kind: str, field_name: str, path: str, options: Any, name: str, append_eos: bool = True) -> Scorer:
    """Load the model at ``path`` as a scorer: ``kind`` is ``reward`` or ``logps``."""
    from pfx.model.loading import load_causal_lm, load_reward_model
    from pfx.model.tokenize import Encoder

    loader = load_reward_model if kind == "reward" else load_causal_lm
    model, tokenizer = loader(path, options)
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if isinstance(positions, int) and options.max_length > positions:
        raise RuntimeFailure(f"--max-length {options.max_length} exceeds the {positions} positions of {path}; "
                             f"use --max-length {positions} or less")
    encoder = Encoder(tokenizer, options.max_length, options.truncation, append_eos=append_eos)
    return Scorer(kind, field_name, model, tokenizer, encoder, options.batch_size, name)


def log_scorers(command: str, scorers: Sequence[Scorer], paths: Sequence[str]) -> None:
    """Print one line per loaded model to stderr: its role, path and ``describe_model``."""
    import sys

    from pfx.model.loading import describe_model

    for scorer, path in zip(scorers, paths):
        print(f"pfx {command}: {scorer.name} {path}: {describe_model(scorer.model)}", file=sys.stderr)


def count_encoder_events(run: Any, scorers: Sequence[Scorer]) -> None:
    """Add the tokenization events of each scorer to the run's counts.

    The first scorer's events count under their own names. Another scorer's
    events are prefixed with its name, unless they equal the first scorer's
    (same tokenizer, same events), which would only count them twice.
    """
    first = scorers[0].encoder.counts if scorers else None
    for position, scorer in enumerate(scorers):
        if position > 0 and scorer.encoder.counts == first:
            continue
        for name, count in scorer.encoder.counts.items():
            run.count(name if position == 0 else f"{scorer.name}: {name}", count)


def boundary_lines(scorer: Scorer, record: dict[str, Any]) -> list[str]:
    """Return one line per answer showing the token boundary as ``scorer`` tokenizes the record."""
    from pfx.model.tokenize import Encoder, describe_boundary

    kind = validate(record, kinds=ANSWER_KINDS)
    # A separate encoder, so that showing a record does not count its events twice.
    encoder = Encoder(scorer.tokenizer, scorer.encoder.max_length, scorer.encoder.truncation,
                      scorer.encoder.append_eos)
    prompt_ids, answers = encoder.encode_answers(record["prompt"], answers_of(record, kind), answer_sides(record, kind))
    return [f"{side}: {describe_boundary(scorer.tokenizer, prompt_ids, ids)}"
            for side, ids in zip(answer_sides(record, kind), answers)]


def record_key(record: dict[str, Any]) -> bytes:
    """Return a key that identifies a record by its id, prompt and answers, fields that scoring never changes."""
    import orjson

    fields = ("id", "prompt", "chosen", "rejected", "completions", "completion", "label")
    return orjson.dumps([record.get(name) for name in fields])
