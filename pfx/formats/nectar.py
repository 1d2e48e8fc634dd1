"""Read berkeley-nest/Nectar into ranked list records.

A source record contains a ``prompt`` already written as an Anthropic-style
transcript (``"\\n\\nHuman: ...\\n\\nAssistant: "``) and ``answers``, each
``{"answer", "model", "rank"}`` where rank 1 is the best (GPT-4's 7-wise
ranking). The answers become ``completions`` with ``ranks`` in the source
order; the prompt string is kept as it is. Model names go to ``meta.models``.
Any other answer field is dropped and counted as ``dropped field answers[].NAME``.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import ReadOptions
from pfx.formats.fields import FeedbackReader, count, optional_number, remaining, require, require_text


class NectarReader(FeedbackReader):
    name = "nectar"
    description = "berkeley-nest/Nectar: a prompt with answers ranked 1 (best) to 7 (ranked lists)"
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        answers = record.get("answers")
        return (
            "prompt" in record
            and isinstance(answers, list)
            and bool(answers)
            and isinstance(answers[0], dict)
            and "answer" in answers[0]
            and "rank" in answers[0]
        )

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        prompt = require_text(record, "prompt")
        answers = require(record, "answers", "a list of answers")
        if not isinstance(answers, list) or len(answers) < 2:
            found = len(answers) if isinstance(answers, list) else type(answers).__name__
            raise RecordError(f"field 'answers': expected a list of at least 2 answers, got {found}", "answers",
                              "fewer than 2 answers")
        completions, ranks, models = [], [], []
        dropped: set[str] = set()
        for index, answer in enumerate(answers):
            where = f"answers[{index}]"
            if not isinstance(answer, dict) or not isinstance(answer.get("answer"), str):
                raise RecordError(f"field '{where}': expected an object with a string 'answer'", "answers",
                                  "invalid answers")
            rank = optional_number(answer.get("rank"), f"{where}.rank", "rank")
            if rank is not None and rank < 1:
                raise RecordError(f"field '{where}.rank': {rank} is below 1 (rank 1 is the best answer)", "answers",
                                  "invalid rank")
            dropped.update(key for key in answer if key not in ("answer", "rank", "model"))
            completions.append(answer["answer"])
            ranks.append(rank)
            models.append(answer.get("model"))
        for field in sorted(dropped):
            count(options, f"dropped field answers[].{field}")
        meta = {"format": self.name, "models": models, **remaining(record, ("prompt", "answers"))}
        yield {"prompt": prompt, "completions": completions, "ranks": ranks, "meta": meta}


READER = NectarReader()
