"""Your own labelled texts, loaded the way ``imdb.load_data`` loads IMDB: `load_dataset`.

Sources:

- a folder of ``<label>/*.txt`` files (one class per sub-folder, like ``aclImdb/train``); a folder with
  ``train/`` and ``test/`` sub-folders of that shape gives both splits (a class folder named ``unsup``,
  aclImdb's unlabelled reviews, is skipped);
- a CSV (or ``.tsv``) file with a header row, or a JSON-lines file (``.jsonl``/``.ndjson``, one object
  per line), with a text column and a label column.

Labels: if every label is a whole number >= 0 (``1``, ``"1"``, ``true``; ASCII digits), it is the class
index itself (classes ``0..max``, at most `max_classes` of the number of examples: a label ``99999999999``
in a file of ten rows is an error naming its line, not 10^11 classes); otherwise the distinct labels,
sorted as strings, are numbered from 0 (so ``neg``/``pos`` become 0/1 and ``negative``/``positive``
too). Two classes make a binary task, more a multi-class one. A label must be a string, number or
boolean (a JSON-lines list or object is an error naming its line).

The vocabulary is built from the training split only (ranks by frequency, ties by first occurrence in
file order), with the tokenizer of `lstmtext.text.tokenizer`; test texts are encoded with it.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from lstmtext.data.corpus import RankedCorpus
from lstmtext.data.keras_format import check_options, keras_num_words, keras_sequences
from lstmtext.errors import ConfigError, DataError
from lstmtext.text.tokenizer import Tokenizer
from lstmtext.text.vocab import Vocab

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".jsonlines"}


@dataclass
class RawTexts:
    """Texts and their raw labels (strings, numbers or booleans as found in the file), in file order."""

    texts: list[str]
    labels: list[Any]
    source: str
    #: The line of each row in the file (CSV / JSON-lines), for messages; None for a folder.
    lines: list[int] | None = None

    def where(self, i: int) -> str:
        """Names row ``i``: ``CSV file 'x.csv', line 7`` (or the source and the row's class folder)."""
        if self.lines is not None:
            return f"{self.source}, line {self.lines[i]}"
        return f"{self.source}, class folder {str(self.labels[i])[:60]!r}"

    def take(self, keep: list[bool]) -> RawTexts:
        """The rows where ``keep`` is true, in file order."""
        return RawTexts(
            [t for t, k in zip(self.texts, keep) if k],
            [v for v, k in zip(self.labels, keep) if k],
            self.source,
            None if self.lines is None else [n for n, k in zip(self.lines, keep) if k],
        )


@dataclass
class TextDataset:
    """What `load_dataset` returns: Keras-style arrays plus what is needed to encode new text.

    Attributes:
        x_train, x_test: ``(N,)`` object arrays of Python lists of word ids (as ``imdb.load_data``).
        y_train, y_test: ``(N,)`` int64 class indices.
        class_names: ``class_names[i]`` is the label of class ``i``.
        tokenizer: encodes raw strings exactly as the texts above were encoded (with ``num_words=None``
            it keeps Keras's "largest id present" cut computed before ``maxlen``, see ``imdb.get_tokenizer``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    tokenizer: Tokenizer = field(repr=False)

    @property
    def num_classes(self) -> int:
        """Number of classes (2 for a binary task)."""
        return len(self.class_names)

    def as_tuples(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """``(x_train, y_train), (x_test, y_test)``, the shape of ``imdb.load_data``'s result."""
        return (self.x_train, self.y_train), (self.x_test, self.y_test)


def _natural_key(name: str) -> list[Any]:
    # "2_7.txt" before "10_3.txt", like aclImdb's numeric ids.
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"text file {str(path)!r} is not UTF-8: {e}") from e


def read_label_folder(folder: str | os.PathLike[str]) -> RawTexts:
    """Read ``<folder>/<label>/*.txt``: each sub-folder is a class named after it."""
    folder = Path(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "unsup")
    texts, labels = [], []
    for class_dir in classes:
        for file in sorted(class_dir.glob("*.txt"), key=lambda p: _natural_key(p.name)):
            texts.append(_read_text_file(file))
            labels.append(class_dir.name)
    if not texts:
        raise DataError(
            f"folder {str(folder)!r} has no <label>/*.txt files; expected one sub-folder per class holding .txt files"
        )
    return RawTexts(texts, labels, f"folder {str(folder)!r}")


def _check_columns(found: list[str], text_column: str, label_column: str, source: str) -> None:
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in found:
            raise DataError(
                f"{source} has no {role} column {column!r}; its columns are {found} "
                f"(choose with text_column=/label_column=)"
            )


def read_csv(path: str | os.PathLike[str], text_column: str = "text", label_column: str = "label") -> RawTexts:
    """Read a CSV/TSV file with a header row; rows missing a value are an error naming the line."""
    path = Path(path)
    source = f"CSV file {str(path)!r}"
    csv.field_size_limit(1 << 30)  # reviews can be longer than the 128 KiB default
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter=CSV_SUFFIXES.get(path.suffix.lower(), ","))
            _check_columns(list(reader.fieldnames or []), text_column, label_column, source)
            texts, labels, lines = [], [], []
            for row in reader:
                text, label = row.get(text_column), row.get(label_column)
                if text is None or label is None or label == "":
                    raise DataError(f"{source}, line {reader.line_num}: missing {text_column!r} or {label_column!r}")
                texts.append(text)
                labels.append(label)
                lines.append(reader.line_num)
    except UnicodeDecodeError as e:
        raise DataError(f"{source} is not UTF-8: {e}") from e
    except csv.Error as e:
        raise DataError(f"{source} is not valid CSV: {e}") from e
    except OSError as e:
        raise DataError(f"{source}: cannot read ({e.strerror})") from None
    return RawTexts(texts, labels, source, lines)


def read_jsonl(path: str | os.PathLike[str], text_column: str = "text", label_column: str = "label") -> RawTexts:
    """Read a JSON-lines file: one object per line with a string text field and a label field."""
    path = Path(path)
    source = f"JSON-lines file {str(path)!r}"
    texts, labels, lines = [], [], []
    try:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                obj = parse_json_line(line, f"{source}, line {line_no}")
                if not isinstance(obj, dict):
                    raise DataError(f"{source}, line {line_no}: expected a JSON object, got {type(obj).__name__}")
                if text_column not in obj or label_column not in obj:
                    _check_columns(sorted(obj), text_column, label_column, f"{source}, line {line_no},")
                if not isinstance(obj[text_column], str):
                    raise DataError(f"{source}, line {line_no}: {text_column!r} must be a string")
                label = obj[label_column]
                if label is None or not isinstance(label, str | int | float):
                    raise DataError(f"{source}, line {line_no}: {label_column!r} must be a string, number or "
                                    f"boolean, got {preview(json.dumps(label))}")
                texts.append(obj[text_column])
                labels.append(label)
                lines.append(line_no)
    except UnicodeDecodeError as e:
        raise DataError(f"{source} is not UTF-8: {e}") from e
    except OSError as e:
        raise DataError(f"{source}: cannot read ({e.strerror})") from None
    return RawTexts(texts, labels, source, lines)


def preview(value: str, limit: int = 40) -> str:
    """``value`` quoted for a message, cut to ``limit`` characters, control characters escaped."""
    shown = repr(value[:limit])
    return shown + (f" ... ({len(value):,} characters)" if len(value) > limit else "")


def parse_json_line(line: str, where: str, *, invalid: str = "not JSON") -> Any:
    """One JSON-lines value; a `DataError` naming ``where`` and the start of the line for anything that is
    not JSON (``invalid`` says so), nested past the parser's limit, or a number of more than 4,300 digits."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: {invalid} ({e.msg}, column {e.colno}): {preview(line.strip())}") from None
    except RecursionError:  # the C parser recurses once per nesting level
        raise DataError(f"{where}: JSON nested too deeply to read: {preview(line.strip())}") from None
    except ValueError as e:  # an integer of more than 4,300 digits
        raise DataError(f"{where}: unreadable JSON value ({str(e).split(';')[0]}): {preview(line.strip())}") from None


def read_texts(path: str | os.PathLike[str], text_column: str = "text", label_column: str = "label") -> RawTexts:
    """Read one split from a ``<label>/*.txt`` folder, a CSV/TSV file or a JSON-lines file."""
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"dataset path {os.fspath(path)!r} does not exist; expected a folder of <label>/*.txt files, "
            "a .csv/.tsv file or a .jsonl file"
        )
    if p.is_dir():
        return read_label_folder(p)
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return read_csv(p, text_column, label_column)
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(p, text_column, label_column)
    raise DataError(f"dataset file {os.fspath(path)!r}: unknown format {suffix!r}; expected .csv, .tsv or .jsonl")


_DIGITS = re.compile(r"[0-9]+")
#: Numeric labels are class indices ``0..max``; ``max + 1`` classes may be at most this many, or the
#: number of examples when that is larger (every class must be able to occur).
MIN_CLASS_BOUND = 1000


def max_classes(n_examples: int) -> int:
    """The most classes numeric labels may imply for ``n_examples`` examples: ``max(1000, n_examples)``."""
    return max(MIN_CLASS_BOUND, n_examples)


def _as_class_index(label: Any) -> int | None:
    if isinstance(label, bool):
        return int(label)
    if isinstance(label, int) and label >= 0:
        return label
    if isinstance(label, str) and _DIGITS.fullmatch(label.strip()):
        digits = label.strip()
        # More digits than any bound allows: no need to convert (Python refuses past 4,300 digits).
        return int(digits) if len(digits) <= 18 else 10**18
    return None


def encode_labels(train: list[Any], test: list[Any], *,
                  where: Callable[[int], str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Class indices for both splits and the class names (see the module docstring for the rule).

    Args:
        train, test: the raw labels.
        where: names example ``i`` of ``train + test`` in messages (file and line).

    Raises:
        DataError: numeric labels implying more classes than `max_classes` allows, naming the largest
            label and where it is; fewer than 2 classes.
    """
    labels = train + test
    indices = [_as_class_index(v) for v in labels]
    if all(i is not None for i in indices):
        top = int(np.argmax(indices)) if indices else 0
        bound = max_classes(len(labels))
        if indices and indices[top] >= bound:
            classes = f"{indices[top] + 1:,}" if indices[top] < 10**18 else "more than 10^18"
            raise DataError(
                f"{where(top) if where else f'example {top}'}: label {preview(str(labels[top]))} would make "
                f"{classes} classes (numeric labels are class indices 0..max), but {len(labels):,} examples allow "
                f"at most {bound:,}; fix the label or use names"
            )
        names = [str(i) for i in range(max(indices, default=0) + 1)]
        arr = np.asarray(indices, dtype=np.int64)
    else:
        names = sorted({str(v) for v in train + test})
        lookup = {name: i for i, name in enumerate(names)}
        arr = np.asarray([lookup[str(v)] for v in train + test], dtype=np.int64)
    present = np.unique(arr)
    if len(present) < 2:
        raise DataError(
            f"only one label ({names[present[0]] if len(present) else None}) in the data; a classifier needs at least 2"
        )
    return arr[: len(train)], arr[len(train) :], names


def load_text_corpus(
    path: str | os.PathLike[str],
    test_path: str | os.PathLike[str] | None = None,
    *,
    test_split: float = 0.2,
    text_column: str = "text",
    label_column: str = "label",
    seed: int = 113,
) -> tuple[RankedCorpus, list[str]]:
    """Read, split, label-encode and rank texts (arguments as for `load_dataset`).

    Returns:
        The `RankedCorpus` (train and test in file order, vocabulary from train) and the class names.
    """
    if isinstance(test_split, bool) or not isinstance(test_split, float | int) or not 0 < test_split < 1:
        raise ConfigError(f"load_dataset: test_split must be a number between 0 and 1 (exclusive), got {test_split!r}")
    p = Path(path)
    if test_path is None and p.is_dir() and (p / "train").is_dir() and (p / "test").is_dir():
        path, test_path = p / "train", p / "test"
    train = read_texts(path, text_column, label_column)
    if test_path is not None:
        test = read_texts(test_path, text_column, label_column)
    else:
        n_test = int(round(len(train.texts) * test_split))
        if n_test < 1 or n_test >= len(train.texts):
            raise DataError(
                f"{train.source} has {len(train.texts)} examples: too few to hold out test_split={test_split}"
            )
        held_out = np.zeros(len(train.texts), dtype=bool)
        held_out[np.random.RandomState(seed).permutation(len(train.texts))[:n_test]] = True
        # Both parts keep file order, so the vocabulary's tie-breaks follow the file.
        test = train.take(held_out.tolist())
        train = train.take((~held_out).tolist())
    n_train = len(train.labels)
    y_train, y_test, class_names = encode_labels(
        train.labels, test.labels, where=lambda i: train.where(i) if i < n_train else test.where(i - n_train))
    return RankedCorpus.from_texts(train.texts, y_train, test.texts, y_test), class_names


def load_dataset(
    path: str | os.PathLike[str],
    test_path: str | os.PathLike[str] | None = None,
    *,
    test_split: float = 0.2,
    text_column: str = "text",
    label_column: str = "label",
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> TextDataset:
    """Load labelled texts as word-id sequences with ``imdb.load_data``'s options and semantics.

    Args:
        path: training data (or all data): a ``<label>/*.txt`` folder, a folder with ``train/`` and
            ``test/`` sub-folders, a ``.csv``/``.tsv`` or a ``.jsonl`` file.
        test_path: test data in one of the same forms. If neither this nor ``train/``+``test/`` is
            given, ``test_split`` of ``path``'s rows (chosen with ``seed``) form the test split.
        test_split: fraction held out for testing when there is no separate test data. Default 0.2.
        text_column, label_column: column (CSV) or key (JSON-lines) names. Default "text"/"label".
        num_words, skip_top, maxlen, seed, start_char, oov_char, index_from: as for ``imdb.load_data``.

    Returns:
        A `TextDataset` (``ds.as_tuples()`` gives ``(x_train, y_train), (x_test, y_test)``).

    Raises:
        DataError: a missing/unreadable path, a missing column, fewer than 2 classes.
        ConfigError: a bad option.

    >>> ds = load_dataset("reviews.csv", num_words=10000)  # doctest: +SKIP
    >>> (x_train, y_train), (x_test, y_test) = ds.as_tuples()  # doctest: +SKIP
    """
    check_options(num_words, skip_top, maxlen, start_char, oov_char, index_from, caller="load_dataset")
    corpus, class_names = load_text_corpus(
        path, test_path, test_split=test_split, text_column=text_column, label_column=label_column, seed=seed
    )
    (x_train, y_train), (x_test, y_test) = keras_sequences(
        corpus, num_words, skip_top, maxlen, seed, start_char, oov_char, index_from
    )
    tokenizer = Tokenizer(
        cast(Vocab, corpus.vocab),  # from_texts always builds the vocabulary
        num_words=keras_num_words(corpus, num_words, start_char, index_from),
        skip_top=skip_top,
        start_char=start_char,
        oov_char=oov_char,
        index_from=index_from,
    )
    return TextDataset(x_train, y_train, x_test, y_test, class_names, tokenizer)
