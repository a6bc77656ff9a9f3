"""Safetensors files, validated by us before the safetensors library sees a byte.

A safetensors file is ``u64 little-endian header length N`` + ``N bytes of JSON header`` + a data
buffer; the header maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets into the data buffer) plus an optional ``"__metadata__"`` of strings. The format cannot
carry code, but a hostile header can still claim absurd sizes, overlapping or out-of-range byte
ranges, or exotic dtypes. :func:`inspect_header` checks all of that in time linear in the header
and memory bounded by the file, and raises :class:`CorruptFileError` naming the file; only then does
:func:`decode_tensors` hand the bytes to ``safetensors``.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from lstmtext.checkpoint.errors import CorruptFileError, WeightMismatchError
from lstmtext.checkpoint.limits import JSON_LIMITS
from lstmtext.checkpoint.safejson import parse_json

#: The safetensors library's own cap on the header (``MAX_HEADER_SIZE``).
MAX_HEADER_BYTES = 100_000_000
MAX_RANK = 16

#: Allowed dtypes: safetensors name -> (torch dtype, bytes per element).
DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
_NAME_OF_DTYPE = {dt: name for name, (dt, _) in DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a safetensors header (offsets are into the data buffer)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _header_length(prefix: bytes, file_size: int, file: str | os.PathLike[str]) -> int:
    if file_size < 8:
        raise CorruptFileError(file, f"truncated: {file_size} bytes, not even the 8-byte header length")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n == 0:
        raise CorruptFileError(file, "not a safetensors file: header length is 0")
    if n > MAX_HEADER_BYTES:
        raise CorruptFileError(file, f"not a safetensors file: header claims {n} bytes (limit {MAX_HEADER_BYTES})")
    if 8 + n > file_size:
        raise CorruptFileError(file, f"truncated or not a safetensors file: header claims {n} bytes, "
                                     f"the file has {file_size}")
    return n


def _parse_entry(name: object, entry: object, data_len: int, file: str | os.PathLike[str]) -> TensorInfo:
    if not isinstance(name, str) or not name:
        raise CorruptFileError(file, f"tensor name must be a non-empty string, got {name!r}")
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise CorruptFileError(file, f"tensor {name!r}: expected keys dtype, shape, data_offsets; got {keys}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise CorruptFileError(file, f"tensor {name!r}: dtype {dtype!r} is not allowed (allowed: {sorted(DTYPES)})")
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(_is_int(d) and d >= 0 for d in shape)):
        raise CorruptFileError(file, f"tensor {name!r}: shape must be a list of at most {MAX_RANK} "
                                     f"non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise CorruptFileError(file, f"tensor {name!r}: data_offsets must be [begin, end] with "
                                     f"0 <= begin <= end, got {offsets!r}")
    begin, end = offsets
    if end > data_len:
        raise CorruptFileError(file, f"tensor {name!r}: byte range [{begin}, {end}) is out of range: the data "
                                     f"buffer has {data_len} bytes (truncated file?)")
    nbytes = math.prod(shape) * DTYPES[dtype][1]
    if nbytes != end - begin:
        raise CorruptFileError(file, f"tensor {name!r}: shape {shape} of {dtype} needs {nbytes} bytes, "
                                     f"its byte range [{begin}, {end}) has {end - begin}")
    return TensorInfo(name, dtype, tuple(shape), begin, end)


def inspect_header(data: bytes | memoryview, *, file: str | os.PathLike[str],
                   file_size: int | None = None) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Validate a safetensors header; return its tensors and metadata.

    Args:
        data: the whole file, or at least its first ``8 + N`` bytes when ``file_size`` is given.
        file: the file name used in error messages.
        file_size: the file's size; ``len(data)`` when None.

    Returns:
        ``(tensors, metadata)``: ``{name: TensorInfo}`` in header order and the ``__metadata__`` strings.

    Raises:
        CorruptFileError: the header length is absurd, the header is not the expected JSON, a dtype is
            not allowed, a shape does not match its byte range, or the byte ranges are out of range,
            overlap, leave gaps, or do not cover the data buffer exactly.
    """
    size = len(data) if file_size is None else file_size
    n = _header_length(bytes(data[:8]), size, file)
    raw = bytes(data[8:8 + n])
    if not raw.startswith(b"{"):
        raise CorruptFileError(file, "not a safetensors file: header does not start with '{'")
    header = parse_json(raw, file=file, limits=JSON_LIMITS["safetensors header"])  # {name: {"shape": [...]}}
    if not isinstance(header, dict):
        raise CorruptFileError(file, "safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CorruptFileError(file, "__metadata__ must map strings to strings")
    data_len = size - 8 - n
    infos = {name: _parse_entry(name, entry, data_len, file) for name, entry in header.items()}
    cursor = 0
    for info in sorted(infos.values(), key=lambda t: (t.begin, t.end)):
        if info.begin < cursor:
            raise CorruptFileError(file, f"tensor {info.name!r}: byte range [{info.begin}, {info.end}) overlaps "
                                         f"another tensor's (which ends at {cursor})")
        if info.begin > cursor:
            raise CorruptFileError(file, f"tensor {info.name!r}: gap before its byte range [{info.begin}, "
                                         f"{info.end}) (previous tensor ends at {cursor})")
        cursor = info.end
    if cursor != data_len:
        raise CorruptFileError(file, f"tensors cover {cursor} bytes of a {data_len}-byte data buffer "
                                     "(trailing bytes: corrupt or not written by safetensors)")
    return infos, metadata


def check_expected(infos: Mapping[str, TensorInfo], expected: Mapping[str, Sequence[int] | torch.Tensor],
                   *, file: str | os.PathLike[str]) -> None:
    """Compare a header with what a model expects, before any tensor is loaded.

    Args:
        infos: :func:`inspect_header`'s tensors.
        expected: ``{name: shape}`` or ``{name: tensor}`` (a tensor also fixes the dtype), e.g. a
            model's ``state_dict()``.
        file: the file name used in error messages.

    Raises:
        WeightMismatchError: listing missing and unexpected names and every shape or dtype difference.
    """
    problems = []
    missing = [k for k in expected if k not in infos]
    unexpected = [k for k in infos if k not in expected]
    if missing:
        problems.append(f"missing weights {missing}")
    if unexpected:
        problems.append(f"unexpected weights {unexpected}")
    for name, want in expected.items():
        info = infos.get(name)
        if info is None:
            continue
        shape = tuple(want.shape) if isinstance(want, torch.Tensor) else tuple(int(d) for d in want)
        if info.shape != shape:
            problems.append(f"weight {name!r} has shape {info.shape}, expected {shape}")
        if isinstance(want, torch.Tensor) and DTYPES[info.dtype][0] != want.dtype:
            problems.append(f"weight {name!r} has dtype {info.dtype}, expected {_NAME_OF_DTYPE.get(want.dtype)}")
    if problems:
        raise WeightMismatchError(file, "; ".join(problems))


def decode_tensors(data: bytes, *, file: str | os.PathLike[str],
                   expected: Mapping[str, Sequence[int] | torch.Tensor] | None = None,
                   device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Validate and decode a safetensors file's bytes into tensors on ``device``.

    Args:
        data: the file's bytes.
        file: the file name used in error messages.
        expected: optional ``{name: shape or tensor}`` the tensors must match (see :func:`check_expected`).
        device: where the tensors go (a checkpoint written on CUDA loads on CPU and vice versa).

    Returns:
        ``{name: tensor}`` in the header's order.

    Raises:
        CorruptFileError: see :func:`inspect_header`.
        WeightMismatchError: see :func:`check_expected`.
    """
    infos, _ = inspect_header(data, file=file)
    if expected is not None:
        check_expected(infos, expected, file=file)
    try:
        loaded = _st_load(data)
    except Exception as e:  # the library's own checks; ours should have caught everything first
        raise CorruptFileError(file, f"safetensors refused the file: {e}") from None
    out = {}
    for name, info in infos.items():
        t = loaded.get(name)
        if t is None or tuple(t.shape) != info.shape or t.dtype != DTYPES[info.dtype][0]:
            raise CorruptFileError(file, f"tensor {name!r} decoded differently from its header")
        out[name] = t.to(device)
    return out


def encode_tensors(tensors: Mapping[str, torch.Tensor], *, file: str | os.PathLike[str] = "<tensors>",
                   metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialize tensors to safetensors bytes, copied to CPU first (tied or shared tensors are fine).

    Raises:
        CorruptFileError: a name is not a non-empty string, a value is not a tensor, or its dtype is
            not one of :data:`DTYPES`.
    """
    cpu = {}
    for name, t in tensors.items():
        if not isinstance(name, str) or not name:
            raise CorruptFileError(file, f"tensor names must be non-empty strings, got {name!r}")
        if not isinstance(t, torch.Tensor):
            raise CorruptFileError(file, f"{name!r} is a {type(t).__name__}, not a torch.Tensor")
        if t.dtype not in _NAME_OF_DTYPE:
            raise CorruptFileError(file, f"{name!r} has dtype {t.dtype}, not one of {sorted(DTYPES)}")
        # copy=True: safetensors refuses tensors sharing storage; a copy also detaches from autograd/CUDA.
        cpu[name] = t.detach().to("cpu", copy=True).contiguous()
    return _st_save(cpu, metadata=dict(metadata) if metadata else None)
