"""Raw documents for language-model pretraining, read as a stream (never all in memory).

Sources (:func:`iter_documents`):

- an aclImdb ``.tar.gz``/``.tar`` archive or extracted ``aclImdb/`` folder: the labelled training reviews
  and the 50,000 unlabelled ``train/unsup`` ones; the test reviews only with ``include_test=True``;
- a folder of ``.txt`` files (every file, recursively, in sorted order, is one document);
- a ``.txt`` file with one document per line (empty lines skipped);
- a CSV/TSV file (header row) or JSON-lines file: one document per row, from ``text_column``.

Every read is bounded: the archive by the bounded tar stream of :mod:`lstmtext.data.archive` (a gzip bomb
is refused before it is inflated), a review by ``MAX_REVIEW_BYTES``, any other document by
:data:`MAX_DOCUMENT_CHARS`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from lstmtext.data.archive import MAX_REVIEW_BYTES, find_aclimdb_root, iter_archive_reviews
from lstmtext.data.loader import CSV_SUFFIXES, JSONL_SUFFIXES
from lstmtext.errors import DataError

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_REVIEW = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg|unsup)/\d+_\d+\.txt$")

#: The longest document read (characters of a line, a CSV field or a JSON-lines record; bytes of a
#: ``.txt`` file): a book is a few MB; a corrupt or hostile file with no line breaks is refused, naming
#: the file and line, instead of being read whole into memory.
MAX_DOCUMENT_CHARS = 64 << 20


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
    # The bounded reader of the labelled-data path: the inflated stream, every member's end and every
    # review's size are checked before anything is inflated (a gzip bomb is refused, naming the archive).
    for m, raw in iter_archive_reviews(path, _REVIEW):
        if _imdb_wanted(m.group(1), m.group(2), include_test):
            yield raw.decode("utf-8", errors="replace")


def _read_file(file: Path, limit: int, what: str) -> str:
    with open(file, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise DataError(f"--data: {what} {str(file)!r} is larger than the {limit:,}-byte limit of one document")
    return raw.decode("utf-8", errors="replace")


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
                yield _read_file(file, MAX_REVIEW_BYTES, "review file")


def _bounded_lines(f: TextIO, path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a text file with their numbers, refusing one longer than :data:`MAX_DOCUMENT_CHARS`."""
    n = 0
    while True:
        line = f.readline(MAX_DOCUMENT_CHARS + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_DOCUMENT_CHARS and not line.endswith("\n"):
            raise DataError(f"--data {str(path)!r} line {n}: longer than the {MAX_DOCUMENT_CHARS:,}-character limit "
                            "of one document (is it one document per line?)")
        yield n, line


def _iter_csv(path: Path, text_column: str) -> Iterator[str]:
    # The csv module's own field limit bounds a row (the default 128 KiB is too small for long documents).
    csv.field_size_limit(MAX_DOCUMENT_CHARS)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=CSV_SUFFIXES[path.suffix.lower()])
        try:
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise DataError(f"--data {str(path)!r}: no column {text_column!r} (--text-column); its columns are "
                                f"{reader.fieldnames or []}")
            for row in reader:
                text = row.get(text_column)
                if text:
                    yield text
        except csv.Error as e:
            raise DataError(f"--data {str(path)!r} line {reader.line_num}: {e} (the limit of one document is "
                            f"{MAX_DOCUMENT_CHARS:,} characters)") from None


def _iter_jsonl(path: Path, text_column: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for n, line in _bounded_lines(f, path):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"--data {str(path)!r} line {n}: not valid JSON ({e.msg})") from None
            except RecursionError:
                raise DataError(f"--data {str(path)!r} line {n}: JSON nested too deeply") from None
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
                yield _read_file(file, MAX_DOCUMENT_CHARS, "file")
        elif kind == "txt-lines":
            with open(p, encoding="utf-8", errors="replace") as f:
                for _, line in _bounded_lines(f, p):
                    if line.strip():
                        yield line
        elif kind == "csv":
            yield from _iter_csv(p, text_column)
        else:
            yield from _iter_jsonl(p, text_column)
    except UnicodeDecodeError as e:
        raise DataError(f"--data {os.fspath(path)!r}: not UTF-8 text ({e.reason} at byte {e.start})") from None
