"""The data of a run: IMDB or your own labelled texts as padded id arrays, with the tokenizer that made them.

:func:`load_run_data` reads what :class:`~lstmtext.config.DataConfig` names exactly as the tutorials do:
an IMDB source through ``imdb.load_data`` (then ``pad_sequences``), anything else through
:func:`lstmtext.data.loader.load_dataset`. :func:`read_labelled_texts` reads raw texts and labels of
any source, for evaluating a trained model (with its own tokenizer) on data it was not trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmtext.config import DataConfig
from lstmtext.data.archive import read_archive, read_folder
from lstmtext.data.imdb import is_imdb_source, load_data_and_tokenizer, resolve_source
from lstmtext.data.loader import CSV_SUFFIXES, JSONL_SUFFIXES, load_dataset, load_text_corpus, read_texts
from lstmtext.errors import DataError
from lstmtext.preprocessing.sequence import pad_sequences
from lstmtext.text import Tokenizer

#: Class names of the IMDB reviews (label 0 = negative, 1 = positive).
IMDB_CLASSES = ("neg", "pos")
_IMDB_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".npz")


@dataclass
class RunData:
    """Padded train and test arrays and what encodes new text the same way.

    Attributes:
        x_train, x_test: int64 ``(N, maxlen)`` padded word ids.
        y_train, y_test: int64 ``(N,)`` class indices.
        class_names: ``class_names[i]`` names class ``i``.
        tokenizer: turns raw text into the ids above.
        source: the file or folder read.
        kind: ``"imdb"`` or ``"texts"`` (your own data).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    tokenizer: Tokenizer = field(repr=False)
    source: str
    kind: str

    @property
    def num_classes(self) -> int:
        """Number of classes (2 for a binary task)."""
        return len(self.class_names)


def check_data_path(path: str | os.PathLike[str] | None) -> None:
    """Fail early, naming ``path``, when it does not exist or is an empty file (None: the default archive).

    Raises:
        DataError: the path is missing or empty.
    """
    if path is None:
        return
    if not os.path.exists(path):
        raise DataError(f"--data {os.fspath(path)!r}: no such file or folder")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise DataError(f"--data {os.fspath(path)!r}: the file is empty")
    name = Path(path).name.lower()
    known = (*_IMDB_SUFFIXES, *CSV_SUFFIXES, *JSONL_SUFFIXES)
    if os.path.isfile(path) and not name.endswith(known):
        raise DataError(f"--data {os.fspath(path)!r}: unknown kind of file; expected an aclImdb .tar.gz/.tar archive, "
                        f"a Keras imdb.npz, a .csv/.tsv or a .jsonl file, or a folder")


def load_run_data(cfg: DataConfig) -> RunData:
    """Load, encode and pad the data a :class:`DataConfig` names.

    IMDB sources: ``imdb.load_data(path, num_words=...)`` and ``imdb.get_tokenizer`` with Keras's defaults
    (seed 113, start id 1, out-of-vocabulary id 2, ids from 3), classes ``neg``/``pos``. Your own data:
    ``load_dataset`` with the config's columns and ``test_split``. Both padded with ``pad_sequences``.

    Returns:
        A :class:`RunData`.

    Raises:
        DataError: missing, empty or malformed data (naming the file).
    """
    check_data_path(cfg.archive)
    if is_imdb_source(cfg.archive):
        # One resolution and one read (one checksum) of the source for the arrays and the tokenizer.
        ((x_train, y_train), (x_test, y_test)), tokenizer, src = load_data_and_tokenizer(cfg.archive,
                                                                                          num_words=cfg.num_words)
        names, kind, source = list(IMDB_CLASSES), "imdb", str(src.resolve())
    else:
        ds = load_dataset(cfg.archive, num_words=cfg.num_words, text_column=cfg.text_column,
                          label_column=cfg.label_column, test_split=cfg.test_split)
        x_train, y_train, x_test, y_test = ds.x_train, ds.y_train, ds.x_test, ds.y_test
        tokenizer, names, kind, source = ds.tokenizer, list(ds.class_names), "texts", str(Path(cfg.archive).resolve())
    if len(x_train) == 0 or len(x_test) == 0:
        raise DataError(f"--data {source!r}: {len(x_train)} training and {len(x_test)} test examples; need both")
    return RunData(pad(x_train, cfg), np.asarray(y_train, dtype=np.int64), pad(x_test, cfg),
                   np.asarray(y_test, dtype=np.int64), names, tokenizer, source, kind)


@dataclass
class LabelledTexts:
    """Raw train and test texts with class indices (what a model with its own tokenizer is trained on).

    Attributes:
        train_texts, test_texts: the texts.
        y_train, y_test: int64 class indices.
        class_names: ``class_names[i]`` names class ``i``.
        source, kind: as in :class:`RunData`.
    """

    train_texts: list[str]
    y_train: np.ndarray
    test_texts: list[str]
    y_test: np.ndarray
    class_names: list[str]
    source: str
    kind: str


def read_labelled_splits(cfg: DataConfig) -> LabelledTexts:
    """The train and test texts of the source a :class:`DataConfig` names, split as :func:`load_run_data` splits.

    IMDB archives and folders give their reviews; your own data is read and split by ``load_dataset``'s
    rules (``test_split``, seed 113) and given back as its words (the tokenization rule is the same, so a
    tokenizer sees the same words; a test word never seen in training comes back as an unknown word).

    Raises:
        DataError: a missing or empty source, a Keras ``imdb.npz`` (ids, not text), or no examples.
    """
    check_data_path(cfg.archive)
    if is_imdb_source(cfg.archive):
        src = resolve_source(cfg.archive)
        if src.suffix == ".npz":
            raise DataError(f"--data {str(src)!r}: a Keras imdb.npz holds word ids, not text; give the "
                            "aclImdb_v1.tar.gz archive or an aclImdb/ folder")
        splits = read_folder(src) if src.is_dir() else read_archive(src)
        return LabelledTexts(splits["train"].texts, splits["train"].labels, splits["test"].texts,
                             splits["test"].labels, list(IMDB_CLASSES), str(src.resolve()), "imdb")
    corpus, names = load_text_corpus(cfg.archive, test_split=cfg.test_split, text_column=cfg.text_column,
                                     label_column=cfg.label_column)
    words = np.array(["", *(corpus.vocab.words if corpus.vocab is not None else []), "xxunk"], dtype=object)

    def texts(split: Any) -> list[str]:
        return [" ".join(words[r]) for r in split.to_lists()]

    if len(corpus.train) == 0 or len(corpus.test) == 0:
        raise DataError(f"--data {str(cfg.archive)!r}: {len(corpus.train)} training and {len(corpus.test)} test "
                        "examples; need both")
    return LabelledTexts(texts(corpus.train), corpus.train.labels, texts(corpus.test), corpus.test.labels,
                         list(names), str(Path(cfg.archive).resolve()), "texts")


def pad(sequences: Any, cfg: DataConfig) -> np.ndarray:
    """``pad_sequences`` with the config's length, padding and truncation (int64 ``(N, maxlen)``)."""
    return pad_sequences(sequences, maxlen=cfg.maxlen, dtype="int64", padding=cfg.padding, truncating=cfg.truncating)


def read_labelled_texts(path: str | os.PathLike[str], *, text_column: str = "text",
                        label_column: str = "label") -> tuple[list[str], list[Any], str]:
    """Raw texts and labels to evaluate on: the test split when the source has one, else every example.

    IMDB archives and folders give their ``test`` reviews (labels 0/1); a folder with ``train/`` and
    ``test/`` gives ``test/``; a ``<label>/*.txt`` folder, CSV or JSON-lines file gives all its rows.

    Returns:
        ``(texts, labels, what)``: ``what`` says which part was read, for messages.

    Raises:
        DataError: a missing path, a Keras ``imdb.npz`` (ids, not text), or no examples.
    """
    check_data_path(path)
    p = Path(path)
    if p.suffix == ".npz":
        raise DataError(f"--data {os.fspath(path)!r}: a Keras imdb.npz holds word ids, not text; give the "
                        "aclImdb_v1.tar.gz archive or an aclImdb/ folder")
    if is_imdb_source(p):
        split = (read_folder(p) if p.is_dir() else read_archive(p))["test"]
        texts, labels, what = split.texts, split.labels.tolist(), f"{p} (test split)"
    elif p.is_dir() and (p / "train").is_dir() and (p / "test").is_dir():
        raw = read_texts(p / "test", text_column, label_column)
        texts, labels, what = raw.texts, raw.labels, f"{p / 'test'}"
    else:
        raw = read_texts(p, text_column, label_column)
        texts, labels, what = raw.texts, raw.labels, str(p)
    if not texts:
        raise DataError(f"--data {os.fspath(path)!r}: no examples in it")
    return texts, labels, what


def label_indices(labels: list[Any], class_names: list[str], source: str) -> np.ndarray:
    """Map raw labels (``"pos"``, ``1``, ``True`` ...) onto a model's class indices.

    Raises:
        DataError: a label the model has no class for (naming it and the known classes).
    """
    lookup = {name: i for i, name in enumerate(class_names)}
    out = np.empty(len(labels), dtype=np.int64)
    for n, v in enumerate(labels):
        key = str(int(v)) if isinstance(v, (bool, int, np.integer)) or (isinstance(v, float) and v.is_integer()) \
            else str(v)
        if key not in lookup and isinstance(v, (int, np.integer)) and 0 <= int(v) < len(class_names):
            key = class_names[int(v)]  # IMDB's 0/1 labels for classes named neg/pos
        if key not in lookup:
            raise DataError(f"{source}: example {n} has label {v!r}, which the model does not know; "
                            f"its classes are {class_names}")
        out[n] = lookup[key]
    return out
