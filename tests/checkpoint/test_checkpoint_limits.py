"""JSON files of a checkpoint made of millions of tiny objects, up to each file's byte cap: refused with a
typed error naming the file and the limit, in under a second, in memory a small multiple of the file.

Each attack forges a matching manifest (the attacker controls the folder). The shapes vary (objects,
arrays, key/value pairs, numbers, empty strings, strings full of brackets and commas) and so do the sizes
(the cap, a quarter of it, just past the count limit), so the limits hold by counting, not by one input.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from lstmtext.checkpoint import CheckpointConfigError, CheckpointError, CorruptFileError, load_checkpoint
from lstmtext.checkpoint import limits as lim
from lstmtext.checkpoint.safejson import JsonLimits, count_json, parse_json

#: CPU seconds of this process (what the refusal costs; wall time on a machine shared with other jobs is
#: not a measure of it): the promise is under a second.
TIME_LIMIT_S = 1.0
FILES = ("config.json", "trainer.json", "vocab.json", "run.json")


def _fill(unit: bytes, size: int, *, open_: bytes = b"[", close: bytes = b"]", sep: bytes = b",") -> bytes:
    """``open_ unit sep unit sep ... close`` of about ``size`` bytes (never more)."""
    n = max(1, (size - len(open_) - len(close)) // (len(unit) + len(sep)))
    return open_ + sep.join([unit] * n) + close


def _pairs(size: int) -> bytes:
    """``{"0":{},"1":{},...}``: distinct keys (duplicates would be refused by the parser anyway)."""
    parts, total, i = [], 2, 0
    while True:
        item = b'"%x":{}' % i
        if total + len(item) + 1 > size:
            break
        parts.append(item)
        total += len(item) + 1
        i += 1
    return b"{" + b",".join(parts) + b"}"


SHAPES = {
    "empty objects": lambda size: _fill(b"{}", size),
    "empty arrays": lambda size: _fill(b"[]", size),
    "nested pairs": _pairs,
    "zeros": lambda size: _fill(b"0", size),
    "empty strings": lambda size: _fill(b'""', size),
    "objects in an envelope": lambda size: _fill(b'{"a":[]}', size, open_=b'{"format":"x","words":[', close=b"]}"),
}


def _expect_refused(fn, file: str, size: int, error: type[Exception] = CorruptFileError) -> tuple[float, int, str]:
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(error) as info:
            fn()
    finally:
        elapsed = time.process_time() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert isinstance(info.value, CheckpointError)
    assert file in str(info.value), str(info.value)
    assert elapsed < TIME_LIMIT_S, f"{file}: took {elapsed:.2f} s of CPU"
    # The file's bytes are read once (the manifest check hashes those very bytes) and the counting makes
    # a few byte-sized masks of them; never the dict-per-brace of a parse (about 100 bytes per byte).
    assert peak < 8 * size + (4 << 20), f"{file}: peak Python allocation {peak >> 20} MiB for {size >> 20} MiB"
    return elapsed, peak, str(info.value)


# Every shape at the largest cap (vocab.json, 32 MiB), two shapes for each other file.
CASES = [("vocab.json", shape) for shape in sorted(SHAPES) if shape != "empty arrays"] + [
    (name, shape) for name in FILES if name != "vocab.json" for shape in ("empty objects", "nested pairs")]


@pytest.mark.parametrize("name, shape", CASES)
def test_file_at_its_cap_made_of_tiny_values_is_refused_fast(saved, commit, name, shape):
    size = lim.JSON_LIMITS[name].max_bytes
    content = SHAPES[shape](size)
    assert len(content) <= size
    (saved / name).write_bytes(content)
    commit(saved)
    _, _, message = _expect_refused(lambda: load_checkpoint(saved), name, size)
    assert "more than the limit" in message


@pytest.mark.parametrize("name", FILES)
def test_just_past_the_count_limits_and_a_quarter_of_the_cap(saved, commit, name):
    limits = lim.JSON_LIMITS[name]
    # One container more than allowed, in a small file: the count, not the size, refuses it.
    content = _fill(b"[]", 0, open_=b"[" + b"[]," * limits.max_containers, close=b"]")
    (saved / name).write_bytes(content)
    commit(saved)
    _, _, message = _expect_refused(lambda: load_checkpoint(saved), name, len(content))
    assert f"more than the limit of {limits.max_containers}" in message
    # Values past the limit at a quarter of the cap (where that fits), in numbers of several digits.
    content = b"[" + b",".join(b"%d" % (i % 1000) for i in range(limits.max_values + 1)) + b"]"
    if len(content) > limits.max_bytes:
        pytest.skip("the value limit cannot be passed within the byte cap for this file")
    (saved / name).write_bytes(content)
    commit(saved)
    _, _, message = _expect_refused(lambda: load_checkpoint(saved), name, len(content))
    assert f"more than the limit of {limits.max_values}" in message


def test_one_byte_past_the_cap_is_refused_before_reading(saved, commit):
    size = lim.JSON_LIMITS["config.json"].max_bytes
    (saved / "config.json").write_bytes(b" " * (size + 1))
    commit(saved)
    _, _, message = _expect_refused(lambda: load_checkpoint(saved), "config.json", 0)
    assert f"larger than the {size}-byte limit" in message


def test_a_real_config_with_too_many_layers_is_refused_before_building(saved, commit):
    layers = [{"class_name": "Dense", "config": {"units": 1}}] * (lim.MAX_LAYERS + 1)
    (saved / "config.json").write_text(json.dumps({"class_name": "Sequential", "config": {"layers": layers}}))
    commit(saved)
    _, _, message = _expect_refused(lambda: load_checkpoint(saved), "config.json", 1 << 20, CheckpointConfigError)
    assert f"describes {lim.MAX_LAYERS + 2} layers, more than the limit of {lim.MAX_LAYERS}" in message


@pytest.mark.parametrize("name, content, expected", [
    ("config.json", {"class_name": "Dense", "config": {"units": 1}, "extra": 1}, "unknown top-level field"),
    ("trainer.json", {"format": "lstmtext.trainer", "version": 1, "state": None, "optimizer": None, "x": []},
     "unknown field(s) 'x'"),
    ("manifest.json", None, "unknown field(s) 'comment'"),
])
def test_unknown_fields_of_closed_formats_are_refused(saved, commit, name, content, expected):
    if name == "manifest.json":
        manifest = json.loads((saved / name).read_text())
        manifest["comment"] = "x" * 100
        (saved / name).write_text(json.dumps(manifest))
    else:
        (saved / name).write_text(json.dumps(content))
        commit(saved)
    _, _, message = _expect_refused(lambda: load_checkpoint(saved), name, 1 << 20, CheckpointError)
    assert expected in message


def test_real_files_are_far_within_their_limits(tiny_checkpoint_files):
    """What a real training run writes counts well under each limit (1/10 of the values or less)."""
    for name, data in tiny_checkpoint_files.items():
        limits = lim.JSON_LIMITS[name]
        containers, values = count_json(data)
        assert len(data) * 10 < limits.max_bytes and containers * 10 < limits.max_containers, name
        assert values * 10 < limits.max_values, name


@pytest.fixture
def tiny_checkpoint_files(saved) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(saved).iterdir() if p.suffix == ".json"}


@pytest.mark.parametrize("data", [
    b'{"a": "{[,,,]}", "b": [1, 2, {"c": "\\\\"}], "d": "\\"{"}',
    b'["\\\\\\"[", {}, []]',
    b'"only a string, with {[ and ,"',
    b"[]",
])
def test_exact_count_matches_the_parsed_value(data):
    value = json.loads(data)
    containers, stack, scalars = 0, [value], 0
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            containers += 1
            stack.extend(node.values() if isinstance(node, dict) else node)
            scalars += len(node) if isinstance(node, dict) else 0  # the keys
        else:
            scalars += 1
    # A tight limit forces the exact count (outside strings).
    tight = JsonLimits(max_containers=0, max_values=0)
    got_containers, got_values = count_json(data, tight)
    assert got_containers == containers
    assert containers + scalars <= got_values <= containers + scalars + containers  # empty containers: +1 each
    # And a limit exactly at the count lets it through.
    assert parse_json(data, file="x.json", limits=replace(tight, max_containers=containers,
                                                          max_values=got_values)) == value
