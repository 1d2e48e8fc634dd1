"""Every part-2 reader turns a malformed field into a RecordError, never a crash."""

from __future__ import annotations

import copy
from typing import Any, Iterator

import pytest
from formats_support import FIXTURE_FILES, FIXTURES

from pfx.errors import RecordError
from pfx.formats import ReadOptions, load_reader
from pfx.io import InputLine, iter_input

ODD_VALUES = (None, 0, 1.0, 1.5, -3, "", "N/A", "text", True, [], {}, [1], [{"role": 3}], {"Rating": []})


def mutations(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield copies of ``record`` with one field, or one field of its first nested object, replaced."""
    for key, value in record.items():
        for odd in ODD_VALUES:
            changed = copy.deepcopy(record)
            changed[key] = odd
            yield changed
        nested = value[0] if isinstance(value, list) and value else value
        if isinstance(nested, dict):
            for inner in nested:
                for odd in ODD_VALUES:
                    changed = copy.deepcopy(record)
                    target = changed[key][0] if isinstance(value, list) else changed[key]
                    target[inner] = odd
                    yield changed


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_reader_malformed_fields_raise_record_error(name):
    reader = load_reader(name)
    items = list(iter_input([str(FIXTURES / FIXTURE_FILES[name])]))
    template = items[0].record
    assert template is not None
    if hasattr(reader, "columns"):
        # A header-less CSV record is keyed by the first row; name its cells by column instead.
        template = dict(zip(reader.columns, template.values()))
    errors: list[RecordError] = []
    cases = 0
    for changed in mutations(template):
        cases += 1
        options = ReadOptions()
        line = InputLine("mutated", 1, "", changed)
        # The reader may accept the change, reject it, or raise RecordError; any other exception fails.
        list(reader.convert([line, line], options, lambda item, error: errors.append(error)))
    assert cases > 20
