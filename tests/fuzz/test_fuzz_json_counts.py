"""The byte-level count of objects, arrays, values and keys that guards every checkpoint JSON file agrees with
the parsed value, whatever the strings hold (brackets, commas, colons, quotes, backslashes, any code point)
and however the file is laid out: a limit set exactly at a real file's count never refuses it.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmtext.checkpoint import CorruptFileError
from lstmtext.checkpoint.safejson import JsonLimits, count_json, parse_json

# Strings rich in the characters the count must see past: JSON's structural ones and its escapes.
TEXT = st.text(alphabet=st.sampled_from(list('{}[],:"\\ \n\t\x00aé😀')) | st.characters(blacklist_categories=("Cs",)),
               max_size=12)
SCALARS = st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False,
                                                                             allow_infinity=False) | TEXT
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
                      max_leaves=40)


def _truth(value) -> tuple[int, int, int]:
    """(containers, values + keys, empty containers) of a parsed value."""
    containers = items = empty = 0
    stack = [value]
    while stack:
        node = stack.pop()
        items += 1
        if isinstance(node, dict | list):
            containers += 1
            empty += not node
            if isinstance(node, dict):
                items += len(node)
                stack.extend(node.values())
            else:
                stack.extend(node)
    return containers, items, empty


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(VALUES, st.booleans(), st.sampled_from([None, 0, 2]))
def test_count_json_matches_the_parsed_value(value, ensure_ascii, indent):
    data = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent).encode("utf-8")
    containers, items, empty = _truth(json.loads(data))
    tight = JsonLimits(max_containers=0, max_values=0)  # forces the exact count, outside strings
    got_containers, got_items = count_json(data, tight)
    assert got_containers == containers
    assert items <= got_items <= items + empty  # an empty container counts one value too many
    # A limit exactly at the count lets the file through; one below refuses it.
    at = JsonLimits(max_bytes=len(data), max_containers=got_containers, max_values=got_items)
    assert parse_json(data, file="x.json", limits=at) == json.loads(data)
    if got_containers:
        with pytest.raises(CorruptFileError, match="objects and arrays, more than the limit"):
            parse_json(data, file="x.json", limits=JsonLimits(max_containers=got_containers - 1))
