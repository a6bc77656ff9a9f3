"""Reading JSON from files that may be hostile: bounded size, depth and object/value counts, strict syntax.

The standard library's parser recurses once per nesting level, accepts ``NaN``, duplicate keys and any
file size, and turns every ``{}`` of a file into a Python dict: 16 MiB of ``{},{},...`` become 5.6 million
dicts, about 1 GB and ten seconds. A checkpoint downloaded from somewhere must not be able to exhaust
memory, blow the stack or smuggle ambiguous content, so every JSON file of a checkpoint goes through
:func:`parse_json` or :func:`read_json`, which count the file's objects, arrays and values *before*
parsing it (:func:`count_json`, a few vectorized passes over the bytes) and raise
:class:`CorruptFileError` (naming the file and the limit) instead. The limits of each file of a
checkpoint are in :mod:`lstmtext.checkpoint.limits`.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmtext.checkpoint.errors import CheckpointNotFoundError, CorruptFileError

#: Default limits; callers pass tighter or looser ones per file kind.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


@dataclass(frozen=True)
class JsonLimits:
    """What one kind of JSON file may hold; checked before the file is parsed.

    Attributes:
        max_bytes: the largest file.
        max_depth: the deepest nesting (a scalar is 0, ``[]`` and ``{}`` are 1).
        max_containers: the most objects and arrays, together.
        max_values: the most values and object keys, together (scalars, objects and arrays).
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_containers: int = 100_000
    max_values: int = 1_000_000


_CHUNK = 1 << 20  # bytes per vectorized step: the masks of one chunk stay in the CPU cache


def _structural_counts(data: bytes) -> tuple[int, int]:
    """``(number of { and [, number of , and :)`` in ``data`` outside JSON strings."""
    # Escapes first: an escaped backslash, then an escaped quote, are never string delimiters. Outside
    # strings a backslash is not valid JSON, so a file this misreads is refused by the parser anyway.
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    flat = np.frombuffer(data, dtype=np.uint8)
    containers = separators = 0
    in_string = 0  # whether the previous chunk ended inside a string
    for start in range(0, len(flat), _CHUNK):
        chunk = flat[start:start + _CHUNK]
        quote = (chunk == ord('"')).view(np.uint8)
        # 1 from an opening quote up to (not including) its closing quote: the string's bytes.
        inside = np.bitwise_xor.accumulate(quote)
        if in_string:
            inside ^= 1
        in_string = int(inside[-1])
        outside = np.where(inside.view(bool), 0, chunk)
        containers += int(np.count_nonzero(outside == ord("{")) + np.count_nonzero(outside == ord("[")))
        separators += int(np.count_nonzero(outside == ord(",")) + np.count_nonzero(outside == ord(":")))
    return containers, separators


def count_json(data: bytes, limits: JsonLimits | None = None) -> tuple[int, int]:
    """Count the objects + arrays and the values + keys of a JSON text without parsing it.

    Every value but the first of its container follows a ``,`` and every object value a ``:``, so
    ``items = , + : + containers + 1`` counted outside strings bounds the values and keys from above
    (exact but for one per empty container). With ``limits``, a count of the raw bytes (an upper bound:
    it includes brackets and commas inside strings) comes first, and the exact count (a few vectorized
    passes, 1 MiB at a time) only when that bound exceeds the limits; a normal file costs a few
    ``bytes.count`` passes.

    Args:
        data: the UTF-8 bytes.
        limits: when given, stop as soon as the counts are known to be within them.

    Returns:
        ``(containers, items)``: objects and arrays, and the bound of values and keys.

    >>> count_json(b'{"a": [1, 2, "x,{"]}')
    (2, 6)
    """
    containers = data.count(b"{") + data.count(b"[")
    items = data.count(b",") + data.count(b":") + containers + 1
    if limits is not None and containers <= limits.max_containers and items <= limits.max_values:
        return containers, items
    if b'"' in data:  # else the raw counts are exact
        containers, separators = _structural_counts(data)
        items = separators + containers + 1
    return containers, items


def read_bounded(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes`` bytes, never more, whatever happens to it meanwhile.

    Args:
        path: the file.
        max_bytes: the largest size accepted.

    Returns:
        The file's bytes.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CorruptFileError: it is not a regular file (a FIFO or device would block or never end) or is
            larger than ``max_bytes``.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointNotFoundError(path, "file not found") from None
    except OSError as e:
        raise CorruptFileError(path, f"cannot stat: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CorruptFileError(path, "not a regular file")
    if st.st_size > max_bytes:
        raise CorruptFileError(path, f"file is {st.st_size} bytes, larger than the {max_bytes}-byte limit")
    try:
        with open(path, "rb") as f:
            # Never ask for more than the stat'd size (+1 to see a file that grew meanwhile): read(n)
            # allocates n bytes up front.
            data = f.read(st.st_size + 1)
    except OSError as e:
        raise CorruptFileError(path, f"cannot read: {e.strerror}") from None
    if len(data) > st.st_size:
        raise CorruptFileError(path, "file grew while being read")
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def json_depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` and ``{}`` are 1), without recursion."""
    depth = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            d += 1
            stack.extend((v, d) for v in node.values())
        elif isinstance(node, list):
            d += 1
            stack.extend((v, d) for v in node)
        depth = max(depth, d)
    return depth


def check_counts(data: bytes, limits: JsonLimits, *, file: str | os.PathLike[str]) -> None:
    """Raise :class:`CorruptFileError` naming ``file`` when ``data`` is larger or holds more objects,
    arrays, values or keys than ``limits`` allow (see :func:`count_json`)."""
    if len(data) > limits.max_bytes:
        raise CorruptFileError(file, f"{len(data)} bytes, larger than the {limits.max_bytes}-byte limit")
    # Each string is a value or a key: past the limit in strings alone, no need to count the rest.
    strings = (data.count(b'"') - data.count(b'\\"')) // 2
    if strings > limits.max_values:
        raise CorruptFileError(file, f"holds at least {strings} JSON strings, more than the limit of "
                                     f"{limits.max_values} values and keys for this file")
    containers, items = count_json(data, limits)
    if containers > limits.max_containers:
        raise CorruptFileError(file, f"holds {containers} JSON objects and arrays, more than the limit of "
                                     f"{limits.max_containers} for this file")
    if items > limits.max_values:
        raise CorruptFileError(file, f"holds up to {items} JSON values and keys, more than the limit of "
                                     f"{limits.max_values} for this file")


def parse_json(data: bytes, *, file: str | os.PathLike[str], max_depth: int = DEFAULT_MAX_DEPTH,
               limits: JsonLimits | None = None) -> Any:
    """Parse strict JSON (UTF-8; no NaN/Infinity; no duplicate keys; nesting at most ``max_depth``).

    Args:
        data: the raw bytes.
        file: the file name used in error messages.
        max_depth: the deepest nesting accepted (``limits.max_depth`` when ``limits`` is given).
        limits: size, depth and count limits checked before parsing (:func:`check_counts`); None checks
            the depth only.

    Returns:
        The parsed value.

    Raises:
        CorruptFileError: for anything else than such JSON.

    >>> parse_json(b'{"a": [1, 2]}', file="x.json")
    {'a': [1, 2]}
    """
    if limits is not None:
        check_counts(data, limits, file=file)
        max_depth = limits.max_depth
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptFileError(file, f"not UTF-8 text (byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_unique_keys)
    except RecursionError:
        # The C parser recurses per level and bails out at the interpreter's recursion limit.
        raise CorruptFileError(file, f"JSON nested deeper than the limit of {max_depth} levels") from None
    except json.JSONDecodeError as e:
        raise CorruptFileError(file, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # NaN, duplicate keys, integers with too many digits
        raise CorruptFileError(file, f"invalid JSON: {e}") from None
    depth = json_depth(obj)
    if depth > max_depth:
        raise CorruptFileError(file, f"JSON nested {depth} levels deep, deeper than the limit of {max_depth}")
    return obj


def read_json(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    expect: type | None = dict,
    limits: JsonLimits | None = None,
) -> Any:
    """Read and parse a JSON file with :func:`read_bounded` and :func:`parse_json`.

    Args:
        path: the file.
        max_bytes: the largest file accepted (``limits.max_bytes`` when ``limits`` is given).
        max_depth: the deepest nesting accepted (``limits.max_depth`` when ``limits`` is given).
        expect: the required type of the top-level value (``dict`` by default; None for any).
        limits: size, depth and count limits (:class:`JsonLimits`), checked before parsing.

    Returns:
        The parsed value.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CorruptFileError: it is too large, not strict JSON, too deep, or of the wrong top-level type.
    """
    if limits is not None:
        max_bytes = limits.max_bytes
    obj = parse_json(read_bounded(path, max_bytes), file=path, max_depth=max_depth, limits=limits)
    check_type(obj, expect, file=path, field="top-level value")
    return obj


def check_type(value: Any, expect: type | tuple[type, ...] | None, *, file: str | os.PathLike[str], field: str) -> None:
    """Raise :class:`CorruptFileError` naming ``file`` and ``field`` unless ``value`` is an ``expect``.

    ``bool`` is not accepted where ``int`` is expected (JSON ``true`` is not a number).
    """
    if expect is None:
        return
    types = expect if isinstance(expect, tuple) else (expect,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise CorruptFileError(file, f"{field} must be {names}, got {type(value).__name__}")


def check_keys(obj: dict[str, Any], allowed: Any, *, file: str | os.PathLike[str], field: str) -> None:
    """Refuse the keys of ``obj`` that ``allowed`` does not list (a file's schema has no unknown fields)."""
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:3])
        shown += f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise CorruptFileError(file, f"{field} has unknown field(s) {shown}; expected only {sorted(allowed)}")


def dumps(obj: Any) -> bytes:
    """Serialize as the checkpoint's files are written: indented, key order kept (a vocabulary's order
    can matter), strict (no NaN: it is not JSON)."""
    return (json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


__all__ = ["JsonLimits", "check_counts", "check_keys", "check_type", "count_json", "dumps", "json_depth", "parse_json",
           "read_bounded", "read_json"]
