"""Read the labelled reviews of the aclImdb dataset from its ``.tar.gz`` archive or an extracted folder.

Only ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` is read (the 50,000 unlabelled
``train/unsup`` reviews are skipped). Reviews come out in one fixed order, the one Keras-format arrays
of the dataset are built in: per split, the positive reviews sorted by numeric id, then the negative
ones sorted by id.
"""

from __future__ import annotations

import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmtext.errors import DataError
from lstmtext.utils.archives import open_decompressed

# "./aclImdb/..." too: what `tar czf x.tar.gz ./aclImdb` writes.
_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")

EXPECTED_LAYOUT = "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"

#: The largest review file read (aclImdb's longest is 13.7 KB).
MAX_REVIEW_BYTES = 1 << 20
#: The tar stream inflated from a compressed archive may be at most this many times the file's size,
#: plus `INFLATE_SLACK_BYTES` (aclImdb_v1.tar.gz: 215.6 MB from 56.7 MB, 3.8x; tar padding and the
#: zero blocks at the end compress to almost nothing in small archives). A gzip bomb is refused when
#: its tar headers declare more, before it is inflated, and a stream that inflates more without
#: declaring it is stopped there.
MAX_INFLATE_RATIO = 20
INFLATE_SLACK_BYTES = 64 << 20


@dataclass
class LabelledSplit:
    """One split's reviews in canonical order: texts, labels (1 = pos, 0 = neg) and review ids."""

    texts: list[str]
    labels: np.ndarray  # (N,) int64
    ids: np.ndarray  # (N,) int64, the <id> of each file name


def _assemble(found: dict[tuple[str, str], list[tuple[int, str]]], source: str) -> dict[str, LabelledSplit]:
    for split in ("train", "test"):
        if not found[(split, "pos")] and not found[(split, "neg")]:
            raise DataError(
                f"{source} has no aclImdb/{split}/pos or aclImdb/{split}/neg reviews; expected the "
                f"aclImdb_v1.tar.gz layout {EXPECTED_LAYOUT}"
            )
    out = {}
    for split in ("train", "test"):
        pos = sorted(found[(split, "pos")], key=lambda t: t[0])
        neg = sorted(found[(split, "neg")], key=lambda t: t[0])
        out[split] = LabelledSplit(
            texts=[t for _, t in pos] + [t for _, t in neg],
            labels=np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64),
            ids=np.array([i for i, _ in pos] + [i for i, _ in neg], dtype=np.int64),
        )
    return out


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where} is not UTF-8 text: {e}") from e


def iter_archive_reviews(path: str | os.PathLike[str],
                         member: re.Pattern[str]) -> Iterator[tuple[re.Match[str], bytes]]:
    """Yield ``(match, bytes)`` for every file of an aclImdb-style archive whose name ``member`` matches, in
    archive order, reading the archive once as a bounded stream.

    The inflated stream is bounded by :data:`MAX_INFLATE_RATIO` x the file's size + :data:`INFLATE_SLACK_BYTES`
    (every member's declared end is checked before it is inflated or skipped), and a matching member by
    :data:`MAX_REVIEW_BYTES`.

    Raises:
        DataError: the file is missing, a folder, truncated or corrupt, a gzip bomb, or a member too large
            (naming the archive and the member).
    """
    name = os.fspath(path)

    def bomb(position: int) -> DataError:
        return DataError(f"IMDB archive {name!r} inflates to more than {position - 1:,} bytes, over "
                         f"{MAX_INFLATE_RATIO}x its size + {INFLATE_SLACK_BYTES >> 20} MiB: not a real aclImdb "
                         "archive (a gzip bomb?)")

    try:
        budget = MAX_INFLATE_RATIO * os.stat(name).st_size + INFLATE_SLACK_BYTES
        # Stream mode ("r|") reads the archive once, front to back: no seeks; gzip, bzip2, xz or plain tar,
        # never more than `budget` inflated bytes (pax and long-name headers included).
        with open_decompressed(name, budget, bomb) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
            for info in tf:
                # Skipping a member inflates it too: every member's end must be within the budget.
                if info.offset_data + info.size > budget:
                    raise DataError(
                        f"IMDB archive {name!r}: member {info.name[:200]!r} ends at byte "
                        f"{info.offset_data + info.size:,} of the inflated stream, more than "
                        f"{MAX_INFLATE_RATIO}x the archive's size + {INFLATE_SLACK_BYTES >> 20} MiB ({budget:,} "
                        "bytes): not a real aclImdb archive (a gzip bomb?)"
                    )
                m = member.match(info.name)
                if m is None or not info.isfile():
                    continue
                if info.size > MAX_REVIEW_BYTES:
                    raise DataError(f"member {info.name!r} of archive {name!r}: {info.size:,} bytes, more than the "
                                    f"{MAX_REVIEW_BYTES:,}-byte limit of a review")
                fileobj = tf.extractfile(info)
                if fileobj is not None:
                    yield m, fileobj.read(info.size)
    except FileNotFoundError as e:
        raise DataError(f"IMDB archive {name!r} does not exist") from e
    except IsADirectoryError as e:
        raise DataError(f"IMDB archive {name!r} is a folder; pass it as a folder source instead") from e
    except (tarfile.TarError, EOFError, zlib.error, OSError, lzma.LZMAError) as e:
        raise DataError(
            f"IMDB archive {name!r} is truncated or corrupt ({type(e).__name__}: {e}); expected a complete "
            "aclImdb_v1.tar.gz (delete it and download it again)"
        ) from e


def read_archive(path: str | os.PathLike[str]) -> dict[str, LabelledSplit]:
    """Read the labelled reviews from an ``aclImdb_v1.tar.gz``-style archive.

    Args:
        path: the ``.tar.gz`` (or ``.tar``) file.

    Returns:
        ``{"train": LabelledSplit, "test": LabelledSplit}`` in canonical order.

    Raises:
        DataError: the file is missing, truncated or corrupt, or has no ``aclImdb/train`` / ``aclImdb/test``.
    """
    name = os.fspath(path)
    found: dict[tuple[str, str], list[tuple[int, str]]] = {
        (s, lab): [] for s in ("train", "test") for lab in ("pos", "neg")
    }
    for m, raw in iter_archive_reviews(name, _MEMBER):
        split, label, idx, _rating = m.groups()
        found[(split, label)].append((int(idx), _decode(raw, f"member {m.group(0)!r} of archive {name!r}")))
    return _assemble(found, f"IMDB archive {name!r}")


def find_aclimdb_root(folder: str | os.PathLike[str]) -> Path | None:
    """The ``aclImdb`` folder at or directly under ``folder`` (the one holding ``train/`` and ``test/``)."""
    folder = Path(folder)
    for candidate in (folder, folder / "aclImdb"):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    return None


def labelled_files(root: Path) -> list[tuple[str, str, int, Path]]:
    """``(split, label, id, path)`` of every labelled review file under an aclImdb folder (any order)."""
    out = []
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            sub = root / split / label
            if not sub.is_dir():
                continue
            with os.scandir(sub) as it:
                for entry in it:
                    m = re.fullmatch(r"(\d+)_(\d+)\.txt", entry.name)
                    if m and entry.is_file():
                        out.append((split, label, int(m.group(1)), Path(entry.path)))
    return out


def read_folder(path: str | os.PathLike[str]) -> dict[str, LabelledSplit]:
    """Read the labelled reviews from an extracted ``aclImdb/`` folder (or the folder containing it).

    Returns and raises like `read_archive`.
    """
    name = os.fspath(path)
    if not os.path.isdir(name):
        raise DataError(f"IMDB folder {name!r} does not exist")
    root = find_aclimdb_root(name)
    if root is None:
        raise DataError(f"IMDB folder {name!r} has no train/ and test/ folders; expected the layout {EXPECTED_LAYOUT}")
    found: dict[tuple[str, str], list[tuple[int, str]]] = {
        (s, lab): [] for s in ("train", "test") for lab in ("pos", "neg")
    }
    for split, label, idx, file in labelled_files(root):
        with open(file, "rb") as f:
            raw = f.read(MAX_REVIEW_BYTES + 1)
        if len(raw) > MAX_REVIEW_BYTES:
            raise DataError(f"review file {str(file)!r} is larger than the {MAX_REVIEW_BYTES:,}-byte limit of a review")
        found[(split, label)].append((idx, _decode(raw, f"review file {str(file)!r}")))
    return _assemble(found, f"IMDB folder {name!r}")
