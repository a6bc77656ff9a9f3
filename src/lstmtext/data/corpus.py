"""`RankedCorpus`: a dataset as word ranks (what Keras's ``imdb.npz`` holds), built once and cached.

Ranks are computed from the training split only: rank 1 = most frequent training word, ties broken by
first occurrence (reviews in canonical order). A test word never seen in training gets the rank
``len(words) + 1``, past the vocabulary (after ``load_data``'s offset it is at or above any sensible
``num_words``, so it becomes ``oov_char``; with ``num_words=None`` Keras's rule maps it to ``oov_char``
too, as it is the largest id).

The cache file is a plain ``.npz`` (no object arrays, read with ``allow_pickle=False``): per split one flat
int32 rank array, int64 offsets and int64 labels, plus the vocabulary as newline-joined UTF-8 bytes.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmtext.data.keras_npz import read_npz
from lstmtext.errors import DataError
from lstmtext.text.tokenizer import TOKENIZER_VERSION, tokenize_bytes
from lstmtext.text.vocab import Vocab
from lstmtext.utils.io import atomic_write_bytes

CACHE_FORMAT_VERSION = 1


@dataclass
class RankedSplit:
    """One split as ranks: review ``i`` is ``ranks[offsets[i]:offsets[i + 1]]``, label ``labels[i]``."""

    ranks: np.ndarray  # (total tokens,) int32
    offsets: np.ndarray  # (N + 1,) int64, offsets[0] == 0
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """(N,) int64 token count of each review."""
        return np.diff(self.offsets)

    @classmethod
    def from_lists(cls, sequences: list[list[int]], labels: np.ndarray) -> RankedSplit:
        """Pack Python lists of ranks (e.g. from a Keras ``imdb.npz``)."""
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((v for s in sequences for v in s), dtype=np.int64, count=int(offsets[-1]))
        if flat.size and (flat.min() < 0 or flat.max() > np.iinfo(np.int32).max):
            raise DataError(f"word ranks must be in 0..{np.iinfo(np.int32).max}, found {flat.min()}..{flat.max()}")
        return cls(flat.astype(np.int32), offsets, np.asarray(labels, dtype=np.int64))

    def to_lists(self) -> list[list[int]]:
        """The reviews as Python lists of ranks."""
        values = self.ranks.tolist()
        bounds = self.offsets.tolist()
        return [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@dataclass
class RankedCorpus:
    """A train and a test split as ranks, and the vocabulary the ranks refer to (None if unknown)."""

    train: RankedSplit
    test: RankedSplit
    vocab: Vocab | None

    @classmethod
    def from_texts(
        cls, train_texts: list[str], train_labels: np.ndarray, test_texts: list[str], test_labels: np.ndarray
    ) -> RankedCorpus:
        """Tokenize, rank the training words and encode both splits."""
        train_tokens = [tokenize_bytes(t) for t in train_texts]
        vocab = Vocab.build(train_tokens)
        train = RankedSplit(*vocab.encode_token_lists(train_tokens), np.asarray(train_labels, dtype=np.int64))
        del train_tokens
        test_tokens = [tokenize_bytes(t) for t in test_texts]
        test = RankedSplit(*vocab.encode_token_lists(test_tokens), np.asarray(test_labels, dtype=np.int64))
        return cls(train, test, vocab)

    # -- cache file --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the corpus to an ``.npz`` cache file atomically (no object arrays)."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(CACHE_FORMAT_VERSION),
            "tokenizer_version": np.array(TOKENIZER_VERSION),
        }
        for name, split in (("train", self.train), ("test", self.test)):
            arrays[f"{name}_ranks"] = split.ranks.astype(np.int32, copy=False)
            arrays[f"{name}_offsets"] = split.offsets.astype(np.int64, copy=False)
            arrays[f"{name}_labels"] = split.labels.astype(np.int64, copy=False)
        if self.vocab is not None:
            arrays["words_utf8"] = np.frombuffer("\n".join(self.vocab.words).encode("utf-8"), dtype=np.uint8)
            arrays["num_words"] = np.array(len(self.vocab))
            if self.vocab.counts is not None:
                arrays["counts"] = self.vocab.counts
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RankedCorpus:
        """Read a cache file written by `save`; `DataError` if it is unreadable or from another version."""
        name = os.fspath(path)
        arrays = read_npz(name, what="cache file")  # members and declared shapes bounded by the file
        if (
            int(arrays.get("format_version", -1)) != CACHE_FORMAT_VERSION
            or int(arrays.get("tokenizer_version", -1)) != TOKENIZER_VERSION
        ):
            raise DataError(f"cache file {name!r} is from another lstmtext version")
        try:
            splits = [
                RankedSplit(arrays[f"{s}_ranks"], arrays[f"{s}_offsets"], arrays[f"{s}_labels"])
                for s in ("train", "test")
            ]
        except KeyError as e:
            raise DataError(f"cache file {name!r} lacks the array {e}") from e
        for s in splits:
            if s.offsets.shape != (len(s.labels) + 1,) or s.offsets[-1] != len(s.ranks):
                raise DataError(f"cache file {name!r} is inconsistent (offsets do not match ranks)")
        vocab = None
        if "words_utf8" in arrays:
            text = arrays["words_utf8"].tobytes().decode("utf-8")
            words = text.split("\n") if text else []
            if len(words) != int(arrays["num_words"]):
                raise DataError(f"cache file {name!r} is inconsistent (vocabulary size)")
            vocab = Vocab(words, arrays.get("counts"))
        return cls(splits[0], splits[1], vocab)


def cache_path(folder: Path, kind: str, key: str) -> Path:
    """The cache file of source ``kind`` ("imdb", "keras-npz", ...) with content key ``key``."""
    return folder / "parsed" / f"{kind}-{key[:32]}-t{TOKENIZER_VERSION}-c{CACHE_FORMAT_VERSION}.npz"
