"""`Vocab`: words ranked by training-set frequency (rank 1 = most frequent), Keras ``word_index`` style."""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lstmtext.errors import DataError
from lstmtext.utils.io import atomic_write_json


class _RankTable(dict):
    """bytes word -> rank; a missing word gets the unknown rank (one past the vocabulary)."""

    def __init__(self, items: Iterable[tuple[bytes, int]], unknown: int) -> None:
        super().__init__(items)
        self.unknown = unknown

    def __missing__(self, key: bytes) -> int:
        return self.unknown


# The top-level fields of a saved vocabulary (`Vocab.to_json_dict`).
_VOCAB_FIELDS = frozenset({"format", "version", "words", "counts"})

class Vocab:
    """An ordered word list: ``words[r - 1]`` has rank ``r``; ranks start at 1 like Keras's ``word_index``.

    Build one from tokenized training documents with `Vocab.build` (ranks by frequency, ties broken by
    first occurrence), or from a Keras ``{word: rank}`` dict with `Vocab.from_word_index`. A word not in
    the vocabulary encodes to ``len(vocab) + 1`` (the "unknown" rank).

    Args:
        words: the words in rank order (no duplicates).
        counts: optional training-set counts, same order.

    >>> v = Vocab.build([["a", "b", "b"], ["c", "a", "b"]])
    >>> v.word_index
    {'b': 1, 'a': 2, 'c': 3}
    >>> v.encode(["c", "zzz"])
    [3, 4]
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int] | np.ndarray | None = None) -> None:
        self.words = list(words)
        for i, w in enumerate(self.words):
            if not isinstance(w, str):
                raise DataError(f"Vocab: word {i} is {type(w).__name__}, expected str")
        if len(set(self.words)) != len(self.words):
            dup = next(w for w, c in Counter(self.words).items() if c > 1)
            raise DataError(f"Vocab: the word {dup!r} appears more than once")
        try:
            self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        except (OverflowError, TypeError, ValueError) as e:
            raise DataError(f"Vocab: counts must be integers that fit in int64 ({e})") from None
        if self.counts is not None and self.counts.shape != (len(self.words),):
            raise DataError(f"Vocab: {len(self.words)} words but counts has shape {self.counts.shape}")
        self._table: _RankTable | None = None
        self._native: tuple[Any, Any, Any] | None = None  # the compiled lookup's tensors (encode_normalized)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def build(cls, documents: Iterable[Sequence[str] | Sequence[bytes]]) -> Vocab:
        """Rank the words of tokenized documents by frequency (rank 1 = most frequent).

        Ties are broken by first occurrence in the documents' order (``Counter.most_common`` is a
        stable sort over first-occurrence order), so the ranks are deterministic.

        Args:
            documents: token lists (``str`` or ASCII ``bytes`` tokens).

        Returns:
            The `Vocab`, with counts.
        """
        counter = Counter(itertools.chain.from_iterable(documents))
        ranked = counter.most_common()
        words = [w.decode("ascii") if isinstance(w, bytes) else w for w, _ in ranked]
        return cls(words, [c for _, c in ranked])

    @classmethod
    def from_word_index(cls, word_index: dict[str, int], *, source: str = "word_index") -> Vocab:
        """Build from a Keras ``{word: rank}`` dict whose ranks are exactly 1..N."""
        if not isinstance(word_index, dict):
            raise DataError(f"{source}: expected a dict of word -> rank, got {type(word_index).__name__}")
        words: list[str | None] = [None] * len(word_index)
        for w, r in word_index.items():
            if isinstance(r, bool) or not isinstance(r, int | np.integer) or not 1 <= r <= len(word_index):
                raise DataError(f"{source}: rank of {w!r} is {r!r}, expected an integer in 1..{len(word_index)}")
            if words[r - 1] is not None:
                raise DataError(f"{source}: rank {r} is given to both {words[r - 1]!r} and {w!r}")
            words[r - 1] = w
        return cls(words)  # type: ignore[arg-type]  # every slot is filled: N distinct ranks in 1..N

    # -- lookups -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.encode("utf-8") in self.table

    @property
    def unknown_rank(self) -> int:
        """The rank of any word not in the vocabulary: ``len(self) + 1``."""
        return len(self.words) + 1

    @property
    def word_index(self) -> dict[str, int]:
        """A new ``{word: rank}`` dict (what ``keras.datasets.imdb.get_word_index`` returns)."""
        return {w: i + 1 for i, w in enumerate(self.words)}

    @property
    def table(self) -> _RankTable:
        """The bytes-keyed lookup table (built on first use)."""
        if self._table is None:
            self._table = _RankTable(((w.encode("utf-8"), i + 1) for i, w in enumerate(self.words)), self.unknown_rank)
        return self._table

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ranks of ``tokens`` (unknown words get `unknown_rank`)."""
        table = self.table
        return [table[t.encode("utf-8")] for t in tokens]

    def encode_token_lists(self, documents: Sequence[Sequence[bytes]]) -> tuple[np.ndarray, np.ndarray]:
        """Encode byte-token documents into one flat int32 rank array and int64 offsets of shape (N + 1,)."""
        lengths = np.fromiter(map(len, documents), dtype=np.int64, count=len(documents))
        offsets = np.zeros(len(documents) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter(
            map(self.table.__getitem__, itertools.chain.from_iterable(documents)),
            dtype=np.int32,
            count=int(offsets[-1]),
        )
        return flat, offsets

    def encode_normalized(self, texts: Sequence[bytes], ops: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """`encode_token_lists` of ``[t.split() for t in texts]``, for texts from
        `lstmtext.text.tokenizer.normalize_bytes` (words of a-z and ' separated by spaces).

        Args:
            texts: the normalized texts.
            ops: the compiled text kernels (``lstmtext.kernels.build.load_ops()``): the splitting and lookups
                then run in C++ without the GIL (``kernels/text_cpu.cpp``), same result; None (default): in
                Python, which keeps torch out of data-only processes (load_data's workers).
        """
        blob = bytearray(b"\n").join(texts) if ops is not None else None
        if not blob or blob.count(b"\n") != len(texts) - 1:  # no kernel, nothing to split, or a text with a newline
            return self.encode_token_lists([t.split() for t in texts])
        import torch

        if self._native is None:
            words = [w.encode("utf-8") for w in self.words]
            offsets = np.zeros(len(words) + 1, dtype=np.int64)
            np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)), out=offsets[1:])
            blob_words = torch.frombuffer(bytearray(b"".join(words)) or bytearray(1), dtype=torch.uint8)
            words_t = blob_words[: int(offsets[-1])]
            offsets_t = torch.from_numpy(offsets)
            self._native = (ops.vocab_slots(words_t, offsets_t), words_t, offsets_t)
        slots, words_t, offsets_t = self._native
        ranks, counts = ops.lookup_words(torch.frombuffer(blob, dtype=torch.uint8), len(texts), slots, words_t,
                                         offsets_t)
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(counts.numpy(), out=offsets[1:])
        return ranks.numpy(), offsets

    # -- serialization -----------------------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-able dict: the words in rank order (and the counts when known)."""
        out: dict[str, Any] = {"format": "lstmtext.vocab", "version": 1, "words": list(self.words)}
        if self.counts is not None:
            out["counts"] = self.counts.tolist()
        return out

    @classmethod
    def from_json_dict(cls, obj: Any, *, source: str = "vocab JSON") -> Vocab:
        """Rebuild from `to_json_dict` output; ``source`` names the file in errors."""
        if not isinstance(obj, dict) or obj.get("format") != "lstmtext.vocab":
            raise DataError(f'{source}: not an lstmtext vocabulary (expected "format": "lstmtext.vocab")')
        unknown = sorted(set(obj) - _VOCAB_FIELDS)
        if unknown:  # a field this version does not know would be silently ignored: refuse it, named
            raise DataError(f"{source}: unknown field(s) {unknown}; a vocabulary holds {sorted(_VOCAB_FIELDS)}")
        if obj.get("version", 1) != 1:
            raise DataError(f'{source}: "version" {obj.get("version")!r} is not supported, this lstmtext reads 1')
        words, counts = obj.get("words"), obj.get("counts")
        if not isinstance(words, list):
            raise DataError(f'{source}: "words" must be a list of strings')
        if counts is not None and (not isinstance(counts, list) or not all(type(c) is int for c in counts)):
            raise DataError(f'{source}: "counts" must be a list of integers')
        try:
            return cls(words, counts)
        except DataError as e:
            raise DataError(f"{source}: {e}") from e

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary to a JSON file, atomically."""
        atomic_write_json(path, self.to_json_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        """Read a vocabulary written by `save`, or a Keras ``{word: rank}`` JSON file."""
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except FileNotFoundError as e:
            raise DataError(f"vocabulary file {os.fspath(path)!r} does not exist") from e
        except (OSError, ValueError) as e:  # ValueError: bad UTF-8, bad JSON, an integer of over 4300 digits
            raise DataError(f"vocabulary file {os.fspath(path)!r} is not readable JSON: {e}") from e
        except RecursionError:  # the JSON parser recurses per nesting level
            raise DataError(f"vocabulary file {os.fspath(path)!r} is not readable JSON: nested too deeply") from None
        source = f"vocabulary file {os.fspath(path)!r}"
        if isinstance(obj, dict) and "format" not in obj:
            return cls.from_word_index(obj, source=source)
        return cls.from_json_dict(obj, source=source)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.words == other.words

    def __repr__(self) -> str:
        head = ", ".join(self.words[:5])
        return f"Vocab({len(self.words)} words: {head}{', ...' if len(self.words) > 5 else ''})"
