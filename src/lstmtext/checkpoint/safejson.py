"""Reading JSON from files that may be hostile: bounded size, bounded depth, strict syntax.

The standard library's parser recurses once per nesting level and accepts ``NaN``, duplicate keys and
any file size. A checkpoint downloaded from somewhere must not be able to exhaust memory, blow the
stack or smuggle ambiguous content, so every JSON file of a checkpoint goes through :func:`parse_json`
or :func:`read_json`, which raise :class:`CorruptFileError` (naming the file) instead.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from lstmtext.checkpoint.errors import CheckpointNotFoundError, CorruptFileError

#: Default limits; callers pass tighter or looser ones per file kind.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


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


def parse_json(data: bytes, *, file: str | os.PathLike[str], max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse strict JSON (UTF-8; no NaN/Infinity; no duplicate keys; nesting at most ``max_depth``).

    Args:
        data: the raw bytes.
        file: the file name used in error messages.
        max_depth: the deepest nesting accepted.

    Returns:
        The parsed value.

    Raises:
        CorruptFileError: for anything else than such JSON.

    >>> parse_json(b'{"a": [1, 2]}', file="x.json")
    {'a': [1, 2]}
    """
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
) -> Any:
    """Read and parse a JSON file with :func:`read_bounded` and :func:`parse_json`.

    Args:
        path: the file.
        max_bytes: the largest file accepted.
        max_depth: the deepest nesting accepted.
        expect: the required type of the top-level value (``dict`` by default; None for any).

    Returns:
        The parsed value.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CorruptFileError: it is too large, not strict JSON, too deep, or of the wrong top-level type.
    """
    obj = parse_json(read_bounded(path, max_bytes), file=path, max_depth=max_depth)
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


def dumps(obj: Any) -> bytes:
    """Serialize as the checkpoint's files are written: indented, key order kept (a vocabulary's order
    can matter), strict (no NaN: it is not JSON)."""
    return (json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


__all__ = ["check_type", "dumps", "json_depth", "parse_json", "read_bounded", "read_json"]
