"""Source and target formats of ``pfx convert``: one module per format, one registry.

A reader turns records of a public feedback format into pfx records; a writer
turns pfx records into another trainer's format. ``READERS`` and ``WRITERS``
map each ``--from``/``--to`` name to the module that implements it, and are
the only place the names are spelled: ``--help``, ``--from`` choices,
auto-detection and error messages all read them.

A reader module defines ``READER``, an instance of a ``Reader`` subclass. A
writer module defines ``WRITER``, an instance of a ``Writer`` subclass.
"""

from __future__ import annotations

import importlib
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Iterator

from pfx.errors import RecordError
from pfx.io import InputLine

# --from NAME -> module
READERS: dict[str, str] = {
    "pfx": "pfx.formats.pfx_records",
    "hh-rlhf": "pfx.formats.hh_rlhf",
    "trl": "pfx.formats.trl",
    "ultrafeedback": "pfx.formats.ultrafeedback",
    "ultrafeedback-binarized": "pfx.formats.ultrafeedback_binarized",
    "shp": "pfx.formats.shp",
    "pku-saferlhf": "pfx.formats.pku_saferlhf",
    "helpsteer2": "pfx.formats.helpsteer2",
    "nectar": "pfx.formats.nectar",
    "arena": "pfx.formats.arena",
    "mt-bench-human": "pfx.formats.mt_bench_human",
    "openai-preference": "pfx.formats.openai_preference",
    "llama-factory": "pfx.formats.llama_factory",
    "axolotl": "pfx.formats.axolotl",
    "alpaca-eval": "pfx.formats.alpaca_eval",
    "sparse-feedback-ratings": "pfx.formats.sparse_feedback",
    "sparse-feedback-rankings": "pfx.formats.sparse_feedback",
}

# --to NAME -> module
WRITERS: dict[str, str] = {
    "pfx": "pfx.formats.write_pfx",
    "trl": "pfx.formats.write_trl",
    "openai-preference": "pfx.formats.write_openai_preference",
    "llama-factory": "pfx.formats.write_llama_factory",
    "axolotl": "pfx.formats.write_axolotl",
    "unpaired": "pfx.formats.write_unpaired",
    "prompts": "pfx.formats.write_prompts",
}


# --score values: which rating becomes the score. UltraFeedback reads overall, fine-grained and its
# four aspects; HelpSteer2 reads overall (its helpfulness) and its five attributes. Each reader
# rejects a name it does not have.
SCORE_CHOICES = ("overall", "fine-grained", "helpfulness", "honesty", "instruction_following", "truthfulness",
                 "correctness", "coherence", "complexity", "verbosity")
# --label values: which PKU-SafeRLHF judgment picks the chosen answer.
LABEL_CHOICES = ("better", "safer")


@dataclass
class ReadOptions:
    """Reader settings from the convert command line."""

    score: str = "overall"  # ultrafeedback: overall | fine-grained | ASPECT
    label: str = "better"  # pku-saferlhf: better | safer
    extra: dict[str, Any] = field(default_factory=dict)  # "style": keep | standard | conversational
    # Events a reader counts for the run summary ("multi-turn answers", "rows merged"); never rejects.
    # A reader that leaves out an input record by policy counts it under a name starting with "dropped:",
    # so that convert's books (read = written + rejected + dropped + merged - expanded) still close.
    counts: Counter = field(default_factory=Counter)


class Reader:
    """Base of every source format.

    Subclasses set ``name`` and ``description`` and implement ``detect`` and
    ``convert_record``. A format whose output record is built from several
    input rows (rows sharing a prompt) overrides ``convert`` instead.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    # Where several readers detect a record, the most specific (highest) wins.
    specificity: ClassVar[int] = 0

    def detect(self, record: dict[str, Any]) -> bool:
        """Return True when ``record`` has the shape of this format."""
        raise NotImplementedError

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        """Return the pfx records of one source record; raise ``RecordError`` for a bad one."""
        raise NotImplementedError

    def convert(self, items: Iterable[InputLine], options: ReadOptions, reject: Any) -> Iterator[dict[str, Any]]:
        """Convert a stream of input lines. ``reject(item, error)`` applies the error policy."""
        for item in items:
            assert item.record is not None
            try:
                yield from self.convert_record(item.record, options)
            except RecordError as error:
                reject(item, error)


class Writer:
    """Base of every target format: one pfx record in, one or more target records out."""

    name: ClassVar[str]
    description: ClassVar[str]
    # Record kinds the format holds; convert expands lists to pairs and splits pairs for the others.
    kinds: ClassVar[tuple[str, ...]] = ("pair", "unpaired")
    # False for a format that keeps no answer (prompts): records then skip the answer
    # transforms (lists to pairs, the tie policy, pairs to unpaired).
    reads_answers: ClassVar[bool] = True
    # The count a record gets when write_record returns no record for it.
    drop_reason: ClassVar[str] = ""

    def write_record(self, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
        """Return the target records of one pfx record; raise ``RecordError`` when the format cannot hold it.

        convert validates the record and checks its kind against ``kinds`` before calling this.
        """
        raise NotImplementedError

    def dropped_fields(self, record: dict[str, Any]) -> list[str]:
        """Return the fields of ``record`` the target format has no place for (counted in the summary)."""
        return []


def module_exists(module: str) -> bool:
    """True when the source file of a ``pfx.formats`` module exists (readers are written over time)."""
    path = os.path.join(os.path.dirname(__file__), module.rsplit(".", 1)[-1] + ".py")
    return os.path.exists(path)


def available_readers() -> list[str]:
    """Return the ``--from`` names whose reader module exists, in registry order."""
    return [name for name, module in READERS.items() if module_exists(module)]


def load_reader(name: str) -> Reader:
    module = importlib.import_module(READERS[name])
    reader = getattr(module, "READERS", {}).get(name) or module.READER
    return reader


def load_writer(name: str) -> Writer:
    """Return a new writer for ``--to name``: a writer may keep state for one run (prompts seen)."""
    return type(importlib.import_module(WRITERS[name]).WRITER)()
