"""Read raw UltraFeedback (openbmb/UltraFeedback) into list records.

A source record contains an ``instruction`` and ``completions``. Each
completion has a ``response``, the model that wrote it, the critique's
``overall_score`` (1-10) and the ``fine-grained_score`` (mean of the aspect
ratings, 1-5). Its ``annotations`` rate four aspects 1-5 as strings, where
``"N/A"`` means the rater gave no rating. ``--score`` picks which of these becomes ``scores``;
every other score is kept per completion under ``meta.ratings``. Rationales,
critiques and the generation system prompts are dropped, and each record that
had them is counted under ``dropped field completions[].NAME``.
"""

from __future__ import annotations

from typing import Any, Iterable

from pfx.errors import RecordError
from pfx.formats import ReadOptions
from pfx.formats.fields import (FeedbackReader, check_choice, count, optional_number, remaining, require,
                                require_text)
from pfx.records import json_type_name

ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
# --score NAME -> (completion key, scale); aspects are looked up in annotations.
SCORES: dict[str, tuple[str, list[int]]] = {
    "overall": ("overall_score", [1, 10]),
    "fine-grained": ("fine-grained_score", [1, 5]),
    **{aspect: (aspect, [1, 5]) for aspect in ASPECTS},
}
# Completion fields whose content reaches the list record; every other one is counted as dropped.
MAPPED_COMPLETION_FIELDS = ("response", "model", "principle", "overall_score", "fine-grained_score")


def aspect_rating(annotations: dict[str, Any], aspect: str, where: str) -> float | int | None:
    """Return one aspect's rating; a missing aspect or ``"N/A"`` is None."""
    annotation = annotations.get(aspect)
    if annotation is None:
        return None
    # Some exports store each aspect as a one-element list of the annotation object.
    if isinstance(annotation, list) and len(annotation) == 1:
        annotation = annotation[0]
    if not isinstance(annotation, dict):
        raise RecordError(f"field '{where}.{aspect}': expected an object with 'Rating', got {json_type_name(annotation)}",
                          "annotations", "invalid annotations")
    return optional_number(annotation.get("Rating"), f"{where}.{aspect}.Rating", f"{aspect} rating")


class UltraFeedbackReader(FeedbackReader):
    name = "ultrafeedback"
    description = "openbmb/UltraFeedback: an instruction with rated completions (list records)"
    specificity = 20

    def detect(self, record: dict[str, Any]) -> bool:
        completions = record.get("completions")
        return (
            "instruction" in record
            and isinstance(completions, list)
            and bool(completions)
            and isinstance(completions[0], dict)
            and ("annotations" in completions[0] or "overall_score" in completions[0])
        )

    def check_options(self, options: ReadOptions) -> None:
        check_choice("score", self._score_name(options), SCORES, self.name)

    @staticmethod
    def _score_name(options: ReadOptions) -> str:
        # Accept the aspect with a hyphen too, as the UltraFeedback README writes it.
        return options.score.replace("instruction-following", "instruction_following")

    def convert_record(self, record: dict[str, Any], options: ReadOptions) -> Iterable[dict[str, Any]]:
        instruction = require_text(record, "instruction")
        completions = require(record, "completions", "a list of completions")
        if not isinstance(completions, list) or len(completions) < 2:
            found = len(completions) if isinstance(completions, list) else type(completions).__name__
            raise RecordError(f"field 'completions': expected a list of at least 2 completions, got {found}",
                              "completions", "fewer than 2 completions")
        score_name = self._score_name(options)
        score_key, scale = SCORES[score_name]

        responses, scores, models, principles, ratings = [], [], [], [], []
        dropped: set[str] = set()
        for index, completion in enumerate(completions):
            where = f"completions[{index}]"
            if not isinstance(completion, dict):
                raise RecordError(f"field '{where}': expected an object, got {json_type_name(completion)}",
                                  "completions", "invalid completions")
            response = completion.get("response")
            if not isinstance(response, str):
                raise RecordError(f"field '{where}.response': expected a string, got {json_type_name(response)}",
                                  "completions", "missing response")
            annotations = completion.get("annotations") or {}
            if not isinstance(annotations, dict):
                raise RecordError(f"field '{where}.annotations': expected an object, got {json_type_name(annotations)}",
                                  "annotations", "invalid annotations")
            rating: dict[str, Any] = {
                "overall_score": optional_number(completion.get("overall_score"), f"{where}.overall_score",
                                                 "overall_score"),
                "fine-grained_score": optional_number(completion.get("fine-grained_score"),
                                                      f"{where}.fine-grained_score", "fine-grained_score"),
            }
            for aspect in ASPECTS:
                rating[aspect] = aspect_rating(annotations, aspect, f"{where}.annotations")
            dropped.update(key for key in completion if key not in MAPPED_COMPLETION_FIELDS)
            responses.append(response)
            scores.append(rating[score_key])
            models.append(completion.get("model"))
            principles.append(completion.get("principle"))
            ratings.append(rating)

        # The ratings of annotations are kept; their rationale texts are not.
        for field in sorted(dropped):
            count(options, f"dropped field completions[].{field}" + (" rationales" if field == "annotations" else ""))
        meta = {
            "format": self.name,
            "score": score_name,
            "score_scale": scale,
            "models": models,
            "principles": principles,
            "ratings": ratings,
            # source (the prompt's origin dataset), correct_answers, ... pass through.
            **remaining(record, ("instruction", "completions", "models")),
        }
        yield {"prompt": instruction, "completions": responses, "scores": scores, "meta": meta}


READER = UltraFeedbackReader()
