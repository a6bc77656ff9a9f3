"""Raw documents for language-model pretraining, read as a stream (never all in memory).

Sources (:func:`iter_documents`):

- an aclImdb ``.tar.gz``/``.tar`` archive or extracted ``aclImdb/`` folder: the labelled training reviews
  and the 50,000 unlabelled ``train/unsup`` ones; the test reviews only with ``include_test=True``;
- a folder of ``.txt`` files (every file, recursively, in sorted order, is one document);
- a ``.txt`` file with one document per line (empty lines skipped);
- a CSV/TSV file (header row) or JSON-lines file: one document per row, from ``text_column``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from lstmtext.data.archive import find_aclimdb_root
from lstmtext.data.loader import CSV_SUFFIXES, JSONL_SUFFIXES
from lstmtext.errors import DataError

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_REVIEW = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg|unsup)/\d+_\d+\.txt$")


def source_kind(path: str | os.PathLike[str]) -> str:
    """``"imdb"``, ``"txt-folder"``, ``"txt-lines"``, ``"csv"`` or ``"jsonl"``.

    Raises:
        DataError: the path is missing, empty or of an unknown kind (naming it).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"--data {os.fspath(path)!r}: no such file or folder")
    if p.is_dir():
        return "imdb" if find_aclimdb_root(p) is not None else "txt-folder"
    name = p.name.lower()
    if p.stat().st_size == 0:
        raise DataError(f"--data {os.fspath(path)!r}: the file is empty (an empty corpus)")
    if name.endswith(_ARCHIVE_SUFFIXES):
        return "imdb"
    if name.endswith(".txt"):
        return "txt-lines"
    if p.suffix.lower() in CSV_SUFFIXES:
        return "csv"
    if p.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    raise DataError(f"--data {os.fspath(path)!r}: unknown kind of file; expected an aclImdb .tar.gz archive or "
                    "folder, a folder of .txt files, a .txt file (one document per line), a .csv/.tsv or .jsonl file")


def _imdb_wanted(split: str, label: str, include_test: bool) -> bool:
    return split == "train" or (include_test and label != "unsup")


def _iter_imdb_archive(path: Path, include_test: bool) -> Iterator[str]:
    try:
        with tarfile.open(path, mode="r|*") as tf:
            for member in tf:
                m = _REVIEW.match(member.name)
                if m is None or not member.isfile() or not _imdb_wanted(m.group(1), m.group(2), include_test):
                    continue
                f = tf.extractfile(member)
                if f is not None:
                    yield f.read().decode("utf-8", errors="replace")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"--data {str(path)!r}: the archive is truncated or corrupt ({type(e).__name__}: {e})") from e


def _iter_imdb_folder(path: Path, include_test: bool) -> Iterator[str]:
    root = find_aclimdb_root(path)
    if root is None:
        raise DataError(f"--data {str(path)!r}: no aclImdb train/ and test/ folders in it")
    for split in ("train", "test"):
        for label in ("pos", "neg", "unsup"):
            sub = root / split / label
            if not sub.is_dir() or not _imdb_wanted(split, label, include_test):
                continue
            for file in sorted(sub.glob("*.txt")):
                yield file.read_text(encoding="utf-8", errors="replace")


def _iter_csv(path: Path, text_column: str) -> Iterator[str]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=CSV_SUFFIXES[path.suffix.lower()])
        if reader.fieldnames is None or text_column not in reader.fieldnames:
            raise DataError(f"--data {str(path)!r}: no column {text_column!r} (--text-column); its columns are "
                            f"{reader.fieldnames or []}")
        for row in reader:
            text = row.get(text_column)
            if text:
                yield text


def _iter_jsonl(path: Path, text_column: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"--data {str(path)!r} line {n}: not valid JSON ({e.msg})") from None
            text = obj.get(text_column) if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise DataError(f"--data {str(path)!r} line {n}: expected an object with a string "
                                f"{text_column!r} field (--text-column)")
            yield text


def iter_documents(path: str | os.PathLike[str], *, include_test: bool = False,
                   text_column: str = "text") -> Iterator[str]:
    """Yield the documents of a pretraining source, one string each, in a fixed order.

    Args:
        path: the source (see the module docstring).
        include_test: IMDB sources only: also yield the labelled test reviews (off by default: the
            test texts are kept out of pretraining unless asked for).
        text_column: the text column/key of a CSV or JSON-lines file.

    Raises:
        DataError: the path is missing or unreadable, or a row is malformed (naming the file and line).
    """
    p = Path(path)
    kind = source_kind(p)
    try:
        if kind == "imdb":
            yield from (_iter_imdb_folder(p, include_test) if p.is_dir() else _iter_imdb_archive(p, include_test))
        elif kind == "txt-folder":
            for file in sorted(p.rglob("*.txt")):
                yield file.read_text(encoding="utf-8", errors="replace")
        elif kind == "txt-lines":
            with open(p, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.strip():
                        yield line
        elif kind == "csv":
            yield from _iter_csv(p, text_column)
        else:
            yield from _iter_jsonl(p, text_column)
    except UnicodeDecodeError as e:
        raise DataError(f"--data {os.fspath(path)!r}: not UTF-8 text ({e.reason} at byte {e.start})") from None
