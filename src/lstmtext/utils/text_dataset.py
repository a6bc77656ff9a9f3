"""text_dataset_from_directory: batches of raw texts and labels from class sub-folders, as Keras's utility.

The file listing, the seeded shuffle of it and the training/validation split follow Keras's own code
(``keras/src/utils/dataset_utils.py``: ``index_directory`` walks each class folder with ``os.walk``, roots and
names sorted, keeps ``*.txt`` case-insensitively, then shuffles the list with ``np.random.RandomState(seed)``;
``get_training_or_validation_split`` keeps the last ``int(validation_split * n)`` files for validation), so for
the same seed the same files land in each subset as in Keras. The order of batches within an epoch differs:
Keras shuffles through a ``tf.data`` buffer, this dataset draws a fresh permutation each epoch from ``seed``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from lstmtext.errors import ConfigError, DataError

LABEL_MODES = ("int", "categorical", "binary", None)


class TextFileDataset:
    """An iterable of batches ``(texts, labels)`` (or ``texts`` when there are no labels), re-iterable per epoch.

    ``texts`` is a NumPy object array of ``str`` of shape ``(batch,)``; ``labels`` is int32 ``(batch,)`` for
    ``label_mode="int"``, float32 ``(batch, 1)`` for ``"binary"``, float32 ``(batch, num_classes)`` for
    ``"categorical"``. With ``batch_size=None`` single ``(text, label)`` samples come out instead.

    Attributes:
        class_names: the class of each label index (None without labels).
        file_paths: the files, in Keras's order (shuffled by ``seed`` when shuffling).
    """

    def __init__(self, file_paths: list[str], labels: np.ndarray | None, label_mode: str | None,
                 class_names: list[str] | None, batch_size: int | None, max_length: int | None,
                 shuffle: bool, seed: int) -> None:
        self.file_paths = file_paths
        self.labels = labels
        self.label_mode = label_mode
        self.class_names = class_names
        self.batch_size = batch_size
        self.max_length = max_length
        self.shuffle = shuffle
        self.seed = seed
        self._epochs = 0
        self._cache: dict[str, str] | None = None

    def __len__(self) -> int:
        """Batches per epoch (the last one may be smaller)."""
        n = len(self.file_paths)
        return n if self.batch_size is None else math.ceil(n / self.batch_size)

    def _read(self, path: str) -> str:
        if self._cache is not None and path in self._cache:
            return self._cache[path]
        try:
            with open(path, "rb") as f:
                raw = f.read() if self.max_length is None else f.read(self.max_length)
        except OSError as e:
            raise DataError(f"text_dataset_from_directory: cannot read {path!r}: {e}") from e
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            # max_length counts bytes, as tf.strings.substr does: a cut inside the last character drops it
            if self.max_length is not None and len(raw) == self.max_length and e.start >= len(raw) - 3 \
                    and e.reason == "unexpected end of data":
                text = raw[:e.start].decode("utf-8")
            else:
                raise DataError(f"text_dataset_from_directory: {path!r} is not UTF-8 text: {e}") from None
        if self._cache is not None:
            self._cache[path] = text
        return text

    def _encode_labels(self, index: np.ndarray) -> np.ndarray:
        labels = self.labels[index]  # type: ignore[index]  # only called with labels
        if self.label_mode == "binary":
            return labels.astype(np.float32)[..., None]
        if self.label_mode == "categorical":
            return np.eye(len(self.class_names or ()), dtype=np.float32)[labels]
        return labels.astype(np.int32)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.file_paths)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self._epochs]).permutation(n)
        else:
            order = np.arange(n)
        self._epochs += 1
        step = self.batch_size or 1
        for start in range(0, n, step):
            index = order[start:start + step]
            texts = np.array([self._read(self.file_paths[i]) for i in index], dtype=object)
            labels = self._encode_labels(index) if self.labels is not None and self.label_mode else None
            if self.batch_size is None:
                yield texts[0] if labels is None else (texts[0], labels[0])
            else:
                yield texts if labels is None else (texts, labels)

    def map(self, fn: Callable[..., Any]) -> MappedDataset:
        """A dataset of ``fn(*batch)`` (``fn(texts, labels)``, as ``tf.data``'s ``map`` unpacks tuples)."""
        return MappedDataset(self, fn)

    def take(self, count: int) -> MappedDataset:
        """The first ``count`` batches of each epoch."""
        return MappedDataset(self, None, count)

    def cache(self, filename: str = "") -> TextFileDataset:
        """Keep the texts in memory after the first read (``filename`` is accepted and ignored)."""
        if self._cache is None:
            self._cache = {}
        return self

    def prefetch(self, buffer_size: Any = None) -> TextFileDataset:
        """Accepted for ``tf.data`` compatibility; batches are read on demand."""
        return self

    def __repr__(self) -> str:
        return (f"TextFileDataset({len(self.file_paths)} files, class_names={self.class_names}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle})")


class MappedDataset:
    """`TextFileDataset.map` / `take`: the batches of another dataset, transformed and/or cut short."""

    def __init__(self, source: Any, fn: Callable[..., Any] | None, count: int | None = None) -> None:
        self.source = source
        self.fn = fn
        self.count = count
        self.class_names = getattr(source, "class_names", None)

    def __iter__(self) -> Iterator[Any]:
        for i, batch in enumerate(self.source):
            if self.count is not None and i >= self.count:
                return
            if self.fn is None:
                yield batch
            else:
                yield self.fn(*batch) if isinstance(batch, tuple) else self.fn(batch)

    def __len__(self) -> int:
        n = len(self.source)
        return n if self.count is None else min(n, max(self.count, 0))

    def map(self, fn: Callable[..., Any]) -> MappedDataset:
        return MappedDataset(self, fn)

    def take(self, count: int) -> MappedDataset:
        return MappedDataset(self, None, count)

    def cache(self, filename: str = "") -> MappedDataset:
        return self

    def prefetch(self, buffer_size: Any = None) -> MappedDataset:
        return self


def _check_validation_split(validation_split: float | None, subset: str | None, shuffle: bool,
                            seed: int | None) -> None:
    if validation_split and not 0 < validation_split < 1:
        raise ConfigError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ConfigError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ConfigError(f'`subset` must be either "training", "validation" or "both", received: {subset!r}')
    if validation_split and shuffle and seed is None:
        raise ConfigError("If using `validation_split` and shuffling the data, you must provide a `seed` argument, "
                          "to make sure that there is no overlap between the training and validation subset.")


def _valid_files(directory: str, follow_links: bool) -> Iterator[tuple[str, str]]:
    # Keras: os.walk (recursive), roots sorted as strings, names sorted, extension compared in lower case
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links), key=lambda x: x[0]):
        for fname in sorted(files):
            if fname.lower().endswith(".txt"):
                yield root, fname


def index_directory(directory: str, labels: str | Sequence[int] | None, class_names: Sequence[str] | None = None,
                    shuffle: bool = True, seed: int | None = None,
                    follow_links: bool = False) -> tuple[list[str], np.ndarray | None, list[str] | None]:
    """Keras's ``dataset_utils.index_directory`` for ``.txt`` files: ``(file_paths, labels, class_names)``."""
    if labels == "inferred":
        subdirs = [d.rstrip("/") for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ConfigError(f"The `class_names` passed did not match the names of the subdirectories of the "
                                  f"target directory. Expected: {subdirs} (or a subset of it), but received: "
                                  f"class_names={list(class_names)}")
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            raise ConfigError("When `labels=None` (no labels), argument `class_names` cannot be specified."
                              if labels is None else
                              "When argument `labels` is specified, argument `class_names` cannot be specified "
                              "(the `class_names` will be the sorted list of labels).")
    names = list(subdirs)
    filenames: list[str] = []
    label_list: list[int] = []
    for index, subdir in enumerate(subdirs):
        dirpath = os.path.join(directory, subdir)
        dirname = os.path.basename(dirpath)
        for root, fname in _valid_files(dirpath, follow_links):
            filenames.append(os.path.join(dirname, os.path.relpath(os.path.join(root, fname), dirpath)))
            label_list.append(index)
    out_labels: np.ndarray | None
    out_names: list[str] | None
    if labels == "inferred":
        out_labels, out_names = np.array(label_list, dtype="int32"), names
    elif labels is None:
        out_labels, out_names = None, None
    else:
        if len(labels) != len(filenames):
            raise ConfigError(f"Expected the lengths of `labels` to match the number of files in the target "
                              f"directory. len(labels) is {len(labels)} while we found {len(filenames)} files in "
                              f"directory {directory}.")
        out_labels = np.asarray(list(labels))
        if out_labels.dtype.kind not in "iu":
            raise ConfigError(f"`labels` must be integers, got dtype {out_labels.dtype}")
        out_names = [str(label) for label in sorted(set(out_labels.tolist()))]
    file_paths = [os.path.join(directory, f) for f in filenames]
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if out_labels is not None:
            np.random.RandomState(seed).shuffle(out_labels)
    return file_paths, out_labels, out_names


def _split(samples: list[str], labels: np.ndarray | None, validation_split: float | None,
           subset: str | None, verbose: bool) -> tuple[list[str], np.ndarray | None]:
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    if subset == "training":
        if verbose:
            print(f"Using {len(samples) - num_val} files for training.")
        # samples[:-0] is empty, as in Keras
        return samples[:-num_val], None if labels is None else labels[:-num_val]
    if verbose:
        print(f"Using {num_val} files for validation.")
    return samples[-num_val:], None if labels is None else labels[-num_val:]


def text_dataset_from_directory(
    directory: str | os.PathLike[str],
    labels: str | Sequence[int] | None = "inferred",
    label_mode: str | None = "int",
    class_names: Sequence[str] | None = None,
    batch_size: int | None = 32,
    max_length: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    follow_links: bool = False,
    verbose: bool = True,
) -> TextFileDataset | tuple[TextFileDataset, TextFileDataset]:
    """Batches of raw texts and labels from ``.txt`` files in class sub-folders (``keras.utils`` function).

    With ``main/class_a/*.txt`` and ``main/class_b/*.txt``, labels are 0 for ``class_a`` and 1 for ``class_b``.
    The batches feed `TextVectorization.adapt` directly (its texts are taken from ``(texts, labels)``).

    Args:
        directory: the folder. With ``labels="inferred"`` each non-hidden sub-folder is a class (files in
            nested folders count too); otherwise every ``.txt`` file below it.
        labels: ``"inferred"``, None (texts only), or one integer label per file in the sorted ``os.walk`` order.
        label_mode: ``"int"`` (int32), ``"categorical"`` (one-hot float32), ``"binary"`` (float32 ``(batch, 1)``,
            exactly 2 classes) or None (texts only).
        class_names: with inferred labels, the sub-folders to use, in label order (default: all, sorted).
        batch_size: texts per batch; None yields single samples.
        max_length: keep only the first ``max_length`` bytes of each file (a character cut in two is dropped).
        shuffle: shuffle the files (seeded) and each epoch's batches; False keeps the sorted order.
        seed: the shuffle seed (Keras draws one with ``np.random.randint`` when None).
        validation_split: fraction of the files kept for validation (the last ones after the shuffle).
        subset: ``"training"``, ``"validation"`` or ``"both"`` (returns ``(train, validation)``).
        follow_links: follow symbolic links to folders.
        verbose: print how many files and classes were found, as Keras does.

    Returns:
        A `TextFileDataset`, or two for ``subset="both"``; ``.class_names`` names the labels.

    Raises:
        ConfigError: bad arguments (the messages are Keras's), DataError: no files, unreadable files.

    >>> train, val = text_dataset_from_directory("aclImdb/train", batch_size=32, validation_split=0.2,
    ...                                           subset="both", seed=1337)          # doctest: +SKIP
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DataError(f"text_dataset_from_directory: {directory!r} is not a directory")
    if labels not in ("inferred", None):
        if not isinstance(labels, list | tuple):
            raise ConfigError("`labels` argument should be a list/tuple of integer labels, of the same size as the "
                              "number of text files in the target directory. If you wish to infer the labels from "
                              'the subdirectory names in the target directory, pass `labels="inferred"`. If you '
                              "wish to get a dataset that only contains text samples (no labels), pass "
                              f"`labels=None`. Received: labels={labels!r:.100}")
        if class_names:
            raise ConfigError('You can only pass `class_names` if `labels="inferred"`. '
                              f"Received: labels={labels!r:.100}, and class_names={class_names}")
    if label_mode not in LABEL_MODES:
        raise ConfigError(f'`label_mode` argument must be one of "int", "categorical", "binary", or None. '
                          f"Received: label_mode={label_mode!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ConfigError(f"`batch_size` must be a positive integer or None, got {batch_size!r}")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                   or max_length < 0):
        raise ConfigError(f"`max_length` must be a non-negative integer or None, got {max_length!r}")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    _check_validation_split(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = int(np.random.randint(1e6))
    file_paths, label_array, names = index_directory(directory, labels, class_names=class_names, shuffle=shuffle,
                                                     seed=seed, follow_links=follow_links)
    if verbose:
        print(f"Found {len(file_paths)} files." if label_array is None else
              f"Found {len(file_paths)} files belonging to {len(names or ())} classes.")
    if label_mode == "binary" and len(names or ()) != 2:
        raise ConfigError(f'When passing `label_mode="binary"`, there must be exactly 2 class_names. Received: '
                          f"class_names={names}")

    def make(paths: list[str], labs: np.ndarray | None, shuffled: bool, what: str) -> TextFileDataset:
        if not paths:
            raise DataError(f"No {what}text files found in directory {directory}. Allowed format: .txt")
        return TextFileDataset(paths, labs, label_mode, names, batch_size, max_length, shuffled, seed)  # type: ignore[arg-type]

    if subset == "both":
        train = make(*_split(file_paths, label_array, validation_split, "training", verbose), shuffle, "training ")
        val = make(*_split(file_paths, label_array, validation_split, "validation", verbose), False, "validation ")
        return train, val
    return make(*_split(file_paths, label_array, validation_split, subset, verbose), shuffle, "")
