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
from lstmtext.data.archive import find_aclimdb_root, read_archive, read_folder
from lstmtext.data.loader import CSV_SUFFIXES, JSONL_SUFFIXES, load_dataset, read_texts
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


def is_imdb_source(path: str | os.PathLike[str] | None) -> bool:
    """True for None (the default archive), an aclImdb archive, an aclImdb folder or a Keras ``imdb.npz``."""
    if path is None:
        return True
    p = Path(path)
    if p.is_dir():
        root = find_aclimdb_root(p)
        return root is not None and any((root / "train" / label).is_dir() for label in IMDB_CLASSES)
    return p.suffix.lower() not in CSV_SUFFIXES and p.suffix.lower() not in JSONL_SUFFIXES


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
    from lstmtext.data import imdb
    from lstmtext.data.imdb import resolve_source

    check_data_path(cfg.archive)
    if is_imdb_source(cfg.archive):
        src = resolve_source(cfg.archive)
        (x_train, y_train), (x_test, y_test) = imdb.load_data(src, num_words=cfg.num_words)
        tokenizer = imdb.get_tokenizer(src, num_words=cfg.num_words)
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
