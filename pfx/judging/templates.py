"""Judge templates: prompt text with placeholders, and the reply format the parser reads.

A template is a UTF-8 text file. Header lines ``key: value`` come first, then
the ``=== system`` section (optional) and the ``=== user`` section::

    name: pairwise-verdict
    description: One line shown by --list-templates.
    parser: verdict
    === system
    You are an impartial judge ...
    === user
    [Question]
    {question}
    ...

Header keys: ``name``, ``description``, ``parser`` (``verdict``, ``scores``,
``json``, ``ranking`` or ``logprob``), ``scale`` (``LOW-HIGH`` for
``scores``, default 1-10) and ``labels`` (for ``ranking`` and ``logprob``:
``ID=A ID=B``, the identifier or token the reply uses for each position). Lines starting with ``#`` before the first
section are comments.

Placeholders: ``{question}``, ``{answer_a}``, ``{answer_b}`` (both required)
and ``{reference}``. They are replaced in one pass, so text inside an answer
that looks like a placeholder stays as written. Other braces (JSON examples)
stay as written too.

The built-in templates are the files in ``pfx/templates/judge/``; that
directory is their only registry.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pfx.judging.parser import (ParsedReply, failure, parse_json_verdict, parse_logprob_choice, parse_ranking, parse_scores,
                                parse_verdict)

PARSERS = ("verdict", "scores", "json", "ranking", "logprob")
LABELLED_PARSERS = ("ranking", "logprob")
# Alternatives per token requested for the logprob parser.
LOGPROB_ALTERNATIVES = 5
PLACEHOLDERS = ("question", "answer_a", "answer_b", "reference", "segments")
REQUIRED_PLACEHOLDERS = ("answer_a", "answer_b")
SPLIT_PLACEHOLDER = "segments"  # replaces both answers in a split-and-merge template
HEADER_KEYS = ("name", "description", "parser", "scale", "labels")
BUILTIN_FOLDER = ("templates", "judge")  # under the pfx package
TEMPLATE_SUFFIX = ".txt"

_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


class TemplateError(ValueError):
    """A template file that cannot be used (a usage error of the command)."""


@dataclass
class Template:
    """A parsed judge template."""

    name: str
    user: str
    parser: str = "verdict"
    system: str | None = None
    description: str = ""
    scale: tuple[float, float] = (1.0, 10.0)
    labels: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def needs_reference(self) -> bool:
        return "{reference}" in self.user or "{reference}" in (self.system or "")

    @property
    def is_split(self) -> bool:
        """True for a split-and-merge template, which shows both answers as one block of interleaved parts."""
        return "{" + SPLIT_PLACEHOLDER + "}" in self.user

    def render(self, question: str, answer_a: str, answer_b: str, reference: str | None = None,
               segments: str = "") -> list[dict[str, str]]:
        """Return the chat messages for one ordering of one pair (``segments``: the interleaved parts, if used)."""
        values = {"question": question, "answer_a": answer_a, "answer_b": answer_b, "reference": reference or "",
                  "segments": segments}

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)

        messages = []
        if self.system:
            messages.append({"role": "system", "content": fill(self.system)})
        messages.append({"role": "user", "content": fill(self.user)})
        return messages

    @property
    def top_logprobs(self) -> int:
        """Return how many alternative tokens per position the parser needs (0: none)."""
        return LOGPROB_ALTERNATIVES if self.parser == "logprob" else 0

    def parse(self, reply: str, logprobs: list[dict[str, Any]] | None = None) -> ParsedReply:
        """Read the verdict from one reply (and its token log-probs, for ``logprob``) in this template's format."""
        if self.parser == "verdict":
            return parse_verdict(reply)
        if self.parser == "scores":
            return parse_scores(reply, *self.scale)
        if self.parser == "json":
            return parse_json_verdict(reply)
        if self.parser == "logprob":
            if not logprobs:
                return failure("the backend returned no token log-probs for this reply")
            return parse_logprob_choice(logprobs[0].get("top_logprobs") or [], self.labels)
        return parse_ranking(reply, self.labels)


def parse_template(text: str, source: str) -> Template:
    """Parse template text; ``source`` names it in errors. Raises ``TemplateError``."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("=== "):
            name = line[4:].strip()
            if name not in ("system", "user"):
                raise TemplateError(f"{source}:{number}: unknown section {name!r}; expected '=== system' or '=== user'")
            if name in sections:
                raise TemplateError(f"{source}:{number}: section '=== {name}' appears twice")
            current = sections[name] = []
        elif current is not None:
            current.append(line)
        elif line.strip() and not line.startswith("#"):
            key, separator, value = line.partition(":")
            key = key.strip()
            if not separator or key not in HEADER_KEYS:
                raise TemplateError(f"{source}:{number}: expected a header line 'KEY: VALUE' with KEY one of {', '.join(HEADER_KEYS)}")
            header[key] = value.strip()
    if "user" not in sections:
        raise TemplateError(f"{source}: missing the '=== user' section")

    user = "\n".join(sections["user"]).strip("\n")
    system = "\n".join(sections["system"]).strip("\n") if "system" in sections else None
    split = "{" + SPLIT_PLACEHOLDER + "}" in user
    for placeholder in () if split else REQUIRED_PLACEHOLDERS:
        if "{" + placeholder + "}" not in user:
            raise TemplateError(f"{source}: the user section lacks the placeholder {{{placeholder}}}")
    parser = header.get("parser", "verdict")
    if parser not in PARSERS:
        raise TemplateError(f"{source}: parser {parser!r} is not one of {', '.join(PARSERS)}")
    template = Template(
        name=header.get("name") or _stem(source),
        user=user,
        parser=parser,
        system=system,
        description=header.get("description", ""),
        source=source,
    )
    if "scale" in header:
        template.scale = _parse_scale(header["scale"], source)
    if parser in LABELLED_PARSERS:
        template.labels = _parse_labels(header.get("labels", ""), source)
    return template


def _parse_scale(value: str, source: str) -> tuple[float, float]:
    low, separator, high = value.partition("-")
    try:
        bounds = (float(low), float(high))
    except ValueError:
        raise TemplateError(f"{source}: scale {value!r} is not of the form LOW-HIGH, for example 1-10") from None
    if not separator or bounds[0] >= bounds[1]:
        raise TemplateError(f"{source}: scale {value!r} is not of the form LOW-HIGH with LOW < HIGH")
    return bounds


def _parse_labels(value: str, source: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in value.split():
        identifier, _, position = item.partition("=")
        if position not in ("A", "B") or not identifier:
            raise TemplateError(f"{source}: labels entry {item!r} is not of the form ID=A or ID=B")
        labels[identifier] = position
    if sorted(labels.values()) != ["A", "B"]:
        raise TemplateError(f"{source}: a ranking or logprob template needs 'labels: ID=A ID=B' naming one identifier per position")
    return labels


def _stem(path: str) -> str:
    name = os.path.basename(path)
    return name[: -len(TEMPLATE_SUFFIX)] if name.endswith(TEMPLATE_SUFFIX) else name


def builtin_templates() -> dict[str, Template]:
    """Return the built-in templates by name, in file-name order."""
    folder = resources.files("pfx").joinpath(*BUILTIN_FOLDER)
    templates = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(TEMPLATE_SUFFIX):
            template = parse_template(entry.read_text(encoding="utf-8"), f"built-in {entry.name}")
            templates[template.name] = template
    return templates


def load_template(name_or_path: str) -> Template:
    """Return a built-in template by name, or the template in the file ``name_or_path``."""
    builtins = builtin_templates()
    if name_or_path in builtins:
        return builtins[name_or_path]
    if not os.path.isfile(name_or_path):
        raise TemplateError(
            f"--template {name_or_path!r} is neither a built-in template ({', '.join(builtins)}) nor a file"
        )
    with open(name_or_path, encoding="utf-8") as handle:
        return parse_template(handle.read(), name_or_path)


def describe_templates() -> list[tuple[str, str, str]]:
    """Return (name, parser, description) of each built-in template."""
    return [(template.name, template.parser, template.description) for template in builtin_templates().values()]
