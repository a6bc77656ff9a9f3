"""Reading members of zip and tar archives that may be hostile: every member bounded before it is read.

A zip member declares its size and compressed size in the archive's directory, a tar member its size
in its header; a bomb declares (or really holds) gigabytes that a few kilobytes inflate to. Every member
read here is checked against a :class:`MemberLimit` *before* a byte is inflated: its declared size
against a realistic cap for that kind of member, and its compression ratio against a bound that real
files stay far below (weights and token ids compress 1-3x, JSON 5-20x; a bomb 1,000x). ``zipfile``
then never returns more than the declared size, so the declared size bounds the memory. Small members
(under ``ratio_exempt_bytes``) may compress better than the bound (a JSON config, 25,000 labels of 0
and 1 in int64) and are bounded by their size only.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class MemberLimit:
    """Bounds of one kind of archive member.

    Attributes:
        max_bytes: the largest uncompressed size.
        max_ratio: the largest uncompressed / compressed size, for members of ``ratio_exempt_bytes`` or more.
        ratio_exempt_bytes: members smaller than this are bounded by ``max_bytes`` only.
    """

    max_bytes: int
    max_ratio: float = 100.0
    ratio_exempt_bytes: int = 1 << 20

    def problem(self, size: int, compressed: int | None) -> str | None:
        """What is wrong with a member of ``size`` bytes stored in ``compressed`` bytes, or None."""
        if size > self.max_bytes:
            return f"claims {size} bytes uncompressed, more than the {self.max_bytes}-byte limit for this member"
        if compressed is not None and size >= self.ratio_exempt_bytes and size > self.max_ratio * max(compressed, 1):
            return (f"claims {size} bytes uncompressed from {compressed} compressed (ratio "
                    f"{size / max(compressed, 1):,.0f}), more than the ratio limit of {self.max_ratio:g} for this "
                    "member (a zip bomb?)")
        return None


def read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: MemberLimit,
                    error: Callable[[str], Exception]) -> bytes:
    """Read one zip member, refusing it before inflating anything if its declared sizes break ``limit``.

    Args:
        zf: the open archive.
        info: the member.
        limit: its bounds.
        error: makes the exception to raise from a message (it should name the file and the member).

    Returns:
        The member's bytes (exactly its declared size).

    Raises:
        What ``error`` makes: the member is too large, too compressed, or holds other than it declares.
    """
    problem = limit.problem(info.file_size, info.compress_size)
    if problem is not None:
        raise error(f"{info.filename} {problem}")
    with zf.open(info) as f:
        data = f.read(info.file_size + 1)  # zipfile stops at the declared size, whatever the stream holds
    if len(data) != info.file_size:
        raise error(f"{info.filename} holds {len(data)} bytes, its header says {info.file_size}")
    return data


class BoundedReader(io.RawIOBase):
    """A read-only stream that raises once more than ``budget`` bytes of ``inner`` have been read in all.

    ``tarfile``'s stream mode reads in records of 10 KiB, a member's data and a pax or GNU long-name header
    included, so through this reader no header can make it read or hold more than the budget.
    """

    def __init__(self, inner: BinaryIO, budget: int, error: Callable[[int], Exception]) -> None:
        super().__init__()
        self.inner, self.budget, self.error, self.position = inner, budget, error, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        left = self.budget - self.position
        # One byte past the budget tells a stream that ends within it from one that goes on.
        data = self.inner.read(size if size is not None and 0 <= size <= left else left + 1)
        self.position += len(data)
        if self.position > self.budget:
            raise self.error(self.position)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_decompressed(path: str | os.PathLike[str], budget: int, error: Callable[[int], Exception]) -> BinaryIO:
    """Open a gzip, bzip2, xz or uncompressed file as a stream of at most ``budget`` inflated bytes.

    Args:
        path: the file (its format is told by its first bytes, not its name).
        budget: the most bytes the stream may yield.
        error: makes the exception raised when the stream goes past ``budget`` (given the byte position).

    Returns:
        A binary stream; close it after use.
    """
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        inner: BinaryIO = gzip.open(path, "rb")
    elif magic.startswith(b"BZh"):
        inner = bz2.open(path, "rb")
    elif magic.startswith(b"\xfd7zXZ\x00"):
        inner = lzma.open(path, "rb")
    else:
        inner = open(path, "rb")  # closed with the reader
    return BoundedReader(inner, budget, error)  # type: ignore[return-value]


__all__ = ["BoundedReader", "MemberLimit", "open_decompressed", "read_zip_member"]
