"""Pretrained word vectors (GloVe, word2vec, fastText text formats) for a tokenizer's vocabulary.

Formats, read as a stream (``.gz`` files decompressed on the fly), one word per line followed by its
numbers, separated by spaces:

* GloVe ``.txt``: no header;
* word2vec text / fastText ``.vec``: a first line ``<count> <dimension>``.

Only the vectors of the words asked for are kept, so a multi-gigabyte file is read in bounded memory.
:func:`embedding_matrix` lays them out by a :class:`~lstmtext.text.Tokenizer`'s ids, which is what
``Embedding(num_words, dim, trainable=False)`` with ``set_weights([matrix])`` (or Keras's
``embeddings_initializer=Constant(matrix)``) takes; :func:`lstmtext.lm.embeddings.pretrained_embedding` does it.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmtext.errors import DataError


@dataclass
class VectorCoverage:
    """How much of a vocabulary the vectors cover."""

    found: int
    """Vocabulary words that have a vector."""
    total: int
    """Vocabulary words asked for."""
    dimension: int
    """Size of each vector."""
    missing_examples: list[str]
    """A few of the most frequent words without a vector."""

    @property
    def fraction(self) -> float:
        """``found / total`` (0 for an empty vocabulary)."""
        return self.found / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"{self.found:,} of {self.total:,} words have a vector ({100 * self.fraction:.1f} %), "
                f"dimension {self.dimension}" + (f"; missing e.g. {self.missing_examples}" if self.missing_examples
                                                 else ""))


def _open_text(path: str | os.PathLike[str]) -> io.TextIOBase:
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise DataError(f"word vectors {name!r}: no such file")
    raw: Any = gzip.open(name, "rb") if name.endswith(".gz") else open(name, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict")


def read_word_vectors(path: str | os.PathLike[str], words: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read the vectors of ``words`` (all words when None) from a GloVe/word2vec/fastText text file.

    Args:
        path: ``.txt``, ``.vec`` or either gzip-compressed (``.gz``).
        words: the words wanted; the first vector of each is kept.

    Returns:
        ``{word: float32 vector}``.

    Raises:
        DataError: a missing or non-UTF-8 file, a line with a different dimension or a non-number (naming
            the file and line), or no vector at all.
    """
    name = os.fspath(path)
    wanted = None if words is None else set(words)
    out: dict[str, np.ndarray] = {}
    dim = None
    try:
        with _open_text(name) as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").rstrip("\r").rstrip(" ").split(" ")
                if n == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    dim = int(parts[1])  # word2vec / fastText header: count, dimension
                    continue
                if len(parts) < 2 or not parts[0]:
                    if not line.strip():
                        continue
                    raise DataError(f"word vectors {name!r} line {n}: expected a word and its numbers")
                if dim is None:
                    dim = len(parts) - 1
                if len(parts) - 1 != dim:
                    raise DataError(f"word vectors {name!r} line {n}: {len(parts) - 1} numbers, expected {dim} "
                                    "(the dimension of the first vector or of the header)")
                word = parts[0]
                if (wanted is not None and word not in wanted) or word in out:
                    continue
                try:
                    out[word] = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise DataError(f"word vectors {name!r} line {n}: the vector of {word!r} holds a value that is "
                                    "not a number") from None
    except UnicodeDecodeError as e:
        raise DataError(f"word vectors {name!r}: not UTF-8 text ({e.reason})") from None
    except (OSError, EOFError) as e:
        raise DataError(f"word vectors {name!r}: unreadable ({e})") from None
    if dim is None:
        raise DataError(f"word vectors {name!r}: no vectors in the file")
    return out


def embedding_matrix(tokenizer: Any, path: str | os.PathLike[str], *, missing: str = "zeros",
                     seed: int = 0) -> tuple[np.ndarray, VectorCoverage]:
    """A ``(num_words, dim)`` float32 matrix: row ``id`` is the vector of the word the tokenizer gives ``id``.

    Args:
        tokenizer: a :class:`~lstmtext.text.Tokenizer` with ``num_words`` set (rows = ids).
        path: the vectors file.
        missing: rows of words without a vector (and of the padding/start/out-of-vocabulary ids):
            ``"zeros"`` (Keras's example) or ``"uniform"`` (U(-0.05, 0.05), seeded).
        seed: seed of the ``"uniform"`` rows.

    Returns:
        ``(matrix, coverage)``.
    """
    if missing not in ("zeros", "uniform"):
        raise DataError(f"embedding_matrix: missing must be 'zeros' or 'uniform', got {missing!r}")
    if tokenizer.num_words is None:
        raise DataError("embedding_matrix: the tokenizer needs num_words (the number of rows)")
    num_words, offset = tokenizer.num_words, tokenizer.index_from
    # Word of rank r (1-based) has id r + index_from; ids at or past num_words are cut.
    vocab = tokenizer.vocab.words[: max(0, num_words - offset - 1)]
    vectors = read_word_vectors(path, vocab)
    dim = len(next(iter(vectors.values()))) if vectors else 0
    if dim == 0:
        raise DataError(f"word vectors {os.fspath(path)!r}: none of the {len(vocab):,} vocabulary words has a vector")
    if missing == "zeros":
        matrix = np.zeros((num_words, dim), dtype=np.float32)
    else:
        matrix = np.random.default_rng(seed).uniform(-0.05, 0.05, (num_words, dim)).astype(np.float32)
    missing_words = []
    for rank, word in enumerate(vocab):
        v = vectors.get(word)
        if v is None:
            missing_words.append(word)
        else:
            matrix[rank + 1 + offset] = v
    coverage = VectorCoverage(len(vocab) - len(missing_words), len(vocab), dim, missing_words[:5])
    return matrix, coverage
