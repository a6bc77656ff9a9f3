"""Read Keras's ``imdb.npz`` without unpickling: a strict reader for object arrays of lists of ints.

Keras stores the ragged IMDB sequences as numpy object arrays, which ``np.save`` writes as a pickle
stream; ``np.load(allow_pickle=True)`` would run whatever that stream says. This module instead walks
the stream opcode by opcode as data, accepts only what ``pickle.dump`` of a 1-D numpy object array
whose items are lists of ints produces (protocols 2 to 5; the globals ``numpy.ndarray``,
``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct`` and, for protocol 2, ``_codecs.encode``),
and refuses anything else with a `DataError` naming the file. Nothing is imported or called (the
effect of each allowed global is emulated); plain numeric arrays (the labels) are read with
``allow_pickle=False``.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
from typing import Any

import numpy as np

from lstmtext.errors import DataError
from lstmtext.utils.archives import MemberLimit, read_zip_member

#: Bounds of each ``.npy`` member, checked on the zip directory before anything is inflated. Keras's own
#: imdb.npz holds 6 million word ids per split (about 18 MB of pickle stream each); 512 MiB is 30 times
#: that. Token ids and labels compress 2-60x; a bomb 1,000x. Change them by assigning a new
#: ``MemberLimit`` before reading.
NPY_MEMBER_LIMIT = MemberLimit(512 << 20, max_ratio=100.0)

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),  # protocol 2 from Python 3 spells bytes as encode("...", "latin1"): emulated
}


class _Global:
    """A reference to an allowed global; never imported, only recognised by name."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name  # name: "ndarray", "dtype", "_reconstruct" or "encode"


class _Mark:
    pass


_MARK = _Mark()


class _ArrayStub:
    """What ``_reconstruct(ndarray, (0,), b'b')`` stands for, until BUILD gives it its state."""

    def __init__(self) -> None:
        self.items: list[Any] | None = None
        self.shape: tuple[int, ...] = ()


class _DtypeStub:
    def __init__(self, code: str) -> None:
        self.code = code


def _fail(source: str, what: str) -> DataError:
    return DataError(
        f"{source}: {what}; expected a numpy object array of lists of integers (the Keras imdb.npz format). "
        "The file is corrupt or not a dataset, and was not loaded"
    )


def parse_object_array_pickle(data: bytes, source: str) -> list[list[int]]:
    """Interpret the pickle stream of a 1-D numpy object array of int lists without executing it.

    Args:
        data: the stream (what follows the ``.npy`` header).
        source: names the file in errors.

    Returns:
        The array's items, as lists of Python ints.
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    i = 0
    unpack_i = struct.Struct("<i").unpack_from
    unpack_I = struct.Struct("<I").unpack_from
    unpack_Q = struct.Struct("<Q").unpack_from
    try:
        while True:
            op = data[i]
            # The three integer opcodes come first: they are >99% of a dataset's stream.
            if op == 0x4B:  # K BININT1
                stack.append(data[i + 1])
                i += 2
            elif op == 0x4D:  # M BININT2
                stack.append(data[i + 1] | (data[i + 2] << 8))
                i += 3
            elif op == 0x4A:  # J BININT
                stack.append(unpack_i(data, i + 1)[0])
                i += 5
            elif op == 0x28:  # ( MARK
                marks.append(len(stack))
                i += 1
            elif op == 0x65:  # e APPENDS
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                target = stack[-1]
                if not isinstance(target, list):
                    raise _fail(source, f"APPENDS to a {type(target).__name__} at byte {i}")
                target.extend(items)
                i += 1
            elif op == 0x61:  # a APPEND
                item = stack.pop()
                if not isinstance(stack[-1], list):
                    raise _fail(source, f"APPEND to a {type(stack[-1]).__name__} at byte {i}")
                stack[-1].append(item)
                i += 1
            elif op == 0x5D:  # ] EMPTY_LIST
                stack.append([])
                i += 1
            elif op == 0x94:  # MEMOIZE
                memo[len(memo)] = stack[-1]
                i += 1
            elif op == 0x71:  # q BINPUT
                memo[data[i + 1]] = stack[-1]
                i += 2
            elif op == 0x72:  # r LONG_BINPUT
                memo[unpack_I(data, i + 1)[0]] = stack[-1]
                i += 5
            elif op in (0x68, 0x6A):  # h BINGET, j LONG_BINGET
                key = data[i + 1] if op == 0x68 else unpack_I(data, i + 1)[0]
                stack.append(memo[key])
                i += 2 if op == 0x68 else 5
            elif op == 0x95:  # FRAME (a length hint only)
                i += 9
            elif op == 0x80:  # PROTO
                if data[i + 1] not in (2, 3, 4, 5):
                    raise _fail(source, f"pickle protocol {data[i + 1]}")
                i += 2
            elif op in (0x8C, 0x58, 0x8D, 0x55, 0x54, 0x43, 0x42, 0x8E):  # strings and bytes
                if op in (0x8C, 0x55, 0x43):
                    size, head = data[i + 1], 2
                elif op in (0x8D, 0x8E):
                    size, head = unpack_Q(data, i + 1)[0], 9
                else:
                    size, head = unpack_I(data, i + 1)[0], 5
                raw = data[i + head : i + head + size]
                if len(raw) != size:
                    raise _fail(source, "a string runs past the end of the stream")
                # Text (unicode, or Python 2 str) is decoded; bytes stay bytes.
                if op in (0x8C, 0x58, 0x8D):
                    stack.append(raw.decode("utf-8"))
                elif op in (0x55, 0x54):  # Python 2 str
                    stack.append(raw.decode("latin-1"))
                else:
                    stack.append(raw)
                i += head + size
            elif op == 0x63:  # c GLOBAL "module\nname\n"
                end1 = data.index(b"\n", i + 1)
                end2 = data.index(b"\n", end1 + 1)
                module, name = data[i + 1 : end1].decode("ascii"), data[end1 + 1 : end2].decode("ascii")
                if (module, name) not in _ALLOWED_GLOBALS:
                    raise _fail(source, f"it refers to {module}.{name}")
                stack.append(_Global(module, name))
                i = end2 + 1
            elif op == 0x93:  # STACK_GLOBAL
                name, module = stack.pop(), stack.pop()
                if (module, name) not in _ALLOWED_GLOBALS:
                    raise _fail(source, f"it refers to {module}.{name}")
                stack.append(_Global(module, name))
                i += 1
            elif op in (0x85, 0x86, 0x87):  # TUPLE1..3
                k = op - 0x84
                tup = tuple(stack[-k:])
                del stack[-k:]
                stack.append(tup)
                i += 1
            elif op == 0x74:  # t TUPLE
                k = marks.pop()
                tup = tuple(stack[k:])
                del stack[k:]
                stack.append(tup)
                i += 1
            elif op == 0x29:  # ) EMPTY_TUPLE
                stack.append(())
                i += 1
            elif op == 0x88 or op == 0x89:  # NEWTRUE / NEWFALSE
                stack.append(op == 0x88)
                i += 1
            elif op == 0x4E:  # N NONE
                stack.append(None)
                i += 1
            elif op == 0x8A:  # LONG1
                size = data[i + 1]
                stack.append(int.from_bytes(data[i + 2 : i + 2 + size], "little", signed=True))
                i += 2 + size
            elif op == 0x52:  # R REDUCE
                args, func = stack.pop(), stack.pop()
                if not isinstance(func, _Global) or not isinstance(args, tuple):
                    raise _fail(source, f"a call of a {type(func).__name__} at byte {i}")
                if func.name == "_reconstruct":
                    if len(args) != 3 or not (isinstance(args[0], _Global) and args[0].name == "ndarray"):
                        raise _fail(source, f"an unexpected _reconstruct{args!r}")
                    stack.append(_ArrayStub())
                elif func.name == "encode":
                    if len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1":
                        raise _fail(source, f"an unexpected encode{args!r}")
                    stack.append(args[0].encode("latin-1"))
                elif func.name == "dtype":
                    if not args or args[0] != "O8":
                        raise _fail(source, f"an array of dtype {args[:1]!r}, not of Python objects")
                    stack.append(_DtypeStub(args[0]))
                else:
                    raise _fail(source, f"a call of numpy.{func.name}")
                i += 1
            elif op == 0x62:  # b BUILD
                state, obj = stack.pop(), stack[-1]
                if isinstance(obj, _ArrayStub):
                    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _DtypeStub)):
                        raise _fail(source, "a malformed array state")
                    _, shape, _, _, items = state
                    if not isinstance(items, list) or not isinstance(shape, tuple) or len(shape) != 1:
                        raise _fail(source, f"an array of shape {shape!r}, expected 1-D")
                    obj.shape, obj.items = shape, items
                elif not isinstance(obj, _DtypeStub):
                    raise _fail(source, f"a BUILD of a {type(obj).__name__}")
                i += 1
            elif op == 0x2E:  # . STOP
                break
            else:
                raise _fail(source, f"pickle opcode {bytes([op])!r} at byte {i}")
    except DataError:
        raise
    except (IndexError, KeyError, ValueError, struct.error, UnicodeDecodeError) as e:
        raise _fail(source, f"a truncated or malformed stream at byte {i} ({type(e).__name__})") from e
    result = stack.pop() if len(stack) == 1 else None
    if not isinstance(result, _ArrayStub) or result.items is None:
        raise _fail(source, "the stream does not build one array")
    if len(result.items) != result.shape[0]:
        raise _fail(source, f"{len(result.items)} items for shape {result.shape}")
    for k, item in enumerate(result.items):
        if not isinstance(item, list) or not all(type(v) is int for v in item):
            raise _fail(source, f"item {k} is not a list of integers")
    return result.items


def _read_member(raw: bytes, source: str) -> np.ndarray | list[list[int]]:
    f = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except ValueError as e:
        raise DataError(f"{source}: not a .npy array ({e})") from e
    body = len(raw) - f.tell()
    count = math.prod(shape)  # Python ints: a header claiming 10^13 items cannot overflow or allocate
    if dtype.hasobject:
        # Each item takes at least one byte of the pickle stream.
        if count > body:
            raise DataError(f"{source}: the header declares shape {shape} ({count} items), more than the "
                            f"{body} bytes that follow it can hold")
        return parse_object_array_pickle(raw[f.tell() :], source)
    if count * dtype.itemsize != body:
        raise DataError(f"{source}: the header declares shape {shape} of {dtype} ({count * dtype.itemsize} "
                        f"bytes), but {body} bytes follow it")
    try:  # a view of the member's bytes: nothing allocated beyond what the file holds
        array = np.frombuffer(raw, dtype=dtype, count=count, offset=f.tell()).copy()  # writable, as np.load
        return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
    except ValueError as e:
        raise DataError(f"{source}: unreadable array ({e})") from e


def read_npz(path: str | os.PathLike[str], *, what: str = "file") -> dict[str, np.ndarray]:
    """Read every numeric array of a ``.npz`` (``np.savez``) with each member bounded (`NPY_MEMBER_LIMIT`)
    and each header's shape checked against the bytes that follow it before anything is allocated.

    Args:
        path: the file.
        what: how to name it in errors (``"cache file"``).

    Returns:
        ``{name: array}``.

    Raises:
        DataError: missing, not a zip of ``.npy`` arrays, a member too large or too compressed, a header
            that lies about its shape, or an object array (never unpickled).
    """
    name = os.fspath(path)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(name) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                source = f"{what} {name!r}, array {info.filename[:-4]}"
                raw = read_zip_member(zf, info, NPY_MEMBER_LIMIT,
                                      lambda problem, source=source: DataError(f"{source}: member {problem}"))
                array = _read_member(raw, source)
                if not isinstance(array, np.ndarray):
                    raise DataError(f"{source}: an object array, expected numbers")
                out[info.filename[:-4]] = array
    except FileNotFoundError as e:
        raise DataError(f"{what} {name!r} does not exist") from e
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as e:
        raise DataError(f"{what} {name!r} is not a readable .npz (zip) file: {e}") from e
    return out


def read_keras_imdb_npz(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a Keras-format ``imdb.npz``: ``x_train``/``x_test`` (lists of int lists), ``y_train``/``y_test``.

    Args:
        path: the ``.npz`` file (Keras's own, or one written by ``np.savez`` from object arrays).

    Returns:
        ``{"x_train": list[list[int]], "y_train": np.ndarray, "x_test": ..., "y_test": ...}``.

    Raises:
        DataError: the file is missing, not a zip of ``.npy`` arrays, lacks one of the four arrays,
            or holds anything but integer lists and numeric labels.
    """
    name = os.fspath(path)
    try:
        with zipfile.ZipFile(name) as zf:
            members = {m[: -len(".npy")]: m for m in zf.namelist() if m.endswith(".npy")}
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in members]
            if missing:
                raise DataError(f"Keras IMDB file {name!r} has no {', '.join(missing)} array (found {sorted(members)})")
            out = {}
            for k in ("x_train", "y_train", "x_test", "y_test"):
                source = f"Keras IMDB file {name!r}, array {k}"
                raw = read_zip_member(zf, zf.getinfo(members[k]), NPY_MEMBER_LIMIT,
                                      lambda problem, source=source: DataError(f"{source}: member {problem}"))
                out[k] = _read_member(raw, source)
    except FileNotFoundError as e:
        raise DataError(f"Keras IMDB file {name!r} does not exist") from e
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as e:  # + encrypted, odd codecs
        raise DataError(f"Keras IMDB file {name!r} is not a readable .npz (zip) file: {e}") from e
    for split in ("train", "test"):
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        if isinstance(x, np.ndarray):
            raise DataError(f"Keras IMDB file {name!r}: x_{split} is a {x.dtype} array, expected lists of word ids")
        if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iub" or len(y) != len(x):
            raise DataError(
                f"Keras IMDB file {name!r}: y_{split} must be {len(x)} integer labels, "
                f"got {getattr(y, 'dtype', type(y).__name__)} of shape {getattr(y, 'shape', None)}"
            )
    return out
