"""The string side of `lstmtext.layers.TextVectorization`: standardize, split, n-grams, vocabulary, encoding.

This module mirrors Keras 3's ``TextVectorization`` / ``IndexLookup`` (``keras/src/layers/preprocessing/``),
which run TensorFlow string ops, with NumPy and Python's C-level ``bytes`` methods; no torch, no TensorFlow.
The TensorFlow ops' exact semantics are kept, because they decide the tokens and so every id:

* ``tf.strings.lower`` lower-cases ASCII letters only (``"ÉCOLE"`` -> ``"École"``, ``"Straße"`` unchanged):
  done here with ``bytes.lower`` on the UTF-8 bytes;
* the punctuation regex ``[!"#$%&()\\*\\+,-\\./:;<=>?@\\[\\\\\\]^_`{|}~\\']`` is ASCII only: ``bytes.translate``
  deletes those 32 bytes (they never occur inside a multi-byte UTF-8 character);
* ``tf.strings.split`` splits on runs of ASCII whitespace (space, ``\\t\\n\\v\\f\\r``), not on ``\\xa0`` or
  ``\\x1c``: exactly ``bytes.split()``;
* ``tf.strings.unicode_split`` splits into code points; ``tf.strings.ngrams`` emits, for each width in
  order, every run of that many tokens joined by one space;
* ``adapt`` ranks tokens by count, ties broken by the token's bytes, both descending
  (``np.lexsort((tokens, counts))[::-1]``), after removing the mask token ``""`` and the OOV token
  ``"[UNK]"``; ``max_tokens`` keeps the first ``max_tokens - (2 in "int" mode else 1)``;
* TF-IDF weights are ``log(1 + num_documents / (1 + document_count))`` (float64, stored as float32), the
  ``[UNK]`` slot gets their mean, and ``pad_to_max_tokens`` pads them with zeros.

Tokens are UTF-8 ``bytes`` inside (what the TensorFlow ops see); the vocabulary is returned as ``str``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from lstmtext.errors import ConfigError, DataError

STANDARDIZE_MODES = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
SPLIT_MODES = ("whitespace", "character")
OUTPUT_MODES = ("int", "multi_hot", "count", "tf_idf")
MAX_NGRAM = 64  # a bound on n-gram widths (and so on the work per token): configs can be untrusted
MASK_TOKEN = ""
OOV_TOKEN = "[UNK]"
# The character class of Keras's standardize regex, r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'.
PUNCTUATION = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'"
_PUNCT_BYTES = PUNCTUATION.encode("ascii")
_LOWER_TABLE = bytes(range(256)).lower()  # ASCII A-Z -> a-z, every other byte unchanged

Standardize = str | Callable[[np.ndarray], Any] | None
Split = str | Callable[[np.ndarray], Any] | None


def as_string_array(inputs: Any, *, encoding: str = "utf-8", where: str = "TextVectorization") -> np.ndarray:
    """``inputs`` (a str, nested lists of str, or a NumPy str/bytes/object array) as an object array of str.

    Raises:
        DataError: for anything that is not strings (numbers, tensors, ragged lists), naming ``where``.
    """
    if isinstance(inputs, str):
        return np.array(inputs, dtype=object)
    if isinstance(inputs, bytes):
        return np.array(_decode(inputs, encoding, where), dtype=object)
    if isinstance(inputs, np.ndarray):
        arr = inputs
    elif isinstance(inputs, (list, tuple)):
        try:
            arr = np.array(inputs, dtype=object)
        except ValueError as e:  # ragged nesting
            raise DataError(f"{where}: expected strings of a rectangular shape (a list of str, or a list of "
                            f"one-element lists); got ragged nested lists ({e})") from None
    else:
        raise DataError(f"{where}: expected text (a str, a list of str or a NumPy array of strings), got "
                        f"{type(inputs).__module__}.{type(inputs).__name__}")
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype.kind == "S":
        return np.array([_decode(b, encoding, where) for b in arr.ravel().tolist()], dtype=object).reshape(arr.shape)
    if arr.dtype.kind != "O":
        raise DataError(f"{where}: expected strings, got a NumPy array of dtype {arr.dtype} with shape {arr.shape}")
    flat = arr.ravel().tolist()
    if not all(type(s) is str for s in flat):
        out = []
        for s in flat:
            if isinstance(s, str):
                out.append(s)
            elif isinstance(s, bytes):
                out.append(_decode(s, encoding, where))
            else:
                raise DataError(f"{where}: expected strings, found an element of type {type(s).__name__}: {s!r:.60}")
        return np.array(out, dtype=object).reshape(arr.shape)
    return arr if arr.dtype == object else arr.astype(object)


def _decode(b: bytes, encoding: str, where: str) -> str:
    try:
        return b.decode(encoding)
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: a bytes input is not valid {encoding}: {e}") from None


def _encode(s: str, where: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(f"{where}: a string cannot be encoded as UTF-8 (lone surrogate?): {e}") from None


def normalize_ngrams(ngrams: Any) -> tuple[int, ...] | None:
    """Keras's ``ngrams`` argument (None, an int n, or a tuple of widths) as the tuple of widths to emit."""
    if ngrams is None:
        return None
    if isinstance(ngrams, bool) or not (isinstance(ngrams, int) or (
            isinstance(ngrams, tuple) and all(isinstance(n, int) and not isinstance(n, bool) for n in ngrams))):
        raise ConfigError(f"TextVectorization: `ngrams` must be None, an integer, or a tuple of integers; "
                          f"got ngrams={ngrams!r}")
    if isinstance(ngrams, int) and not 1 <= ngrams <= MAX_NGRAM or isinstance(ngrams, tuple) and (
            not ngrams or any(not 1 <= n <= MAX_NGRAM for n in ngrams)):
        raise ConfigError(f"TextVectorization: `ngrams` widths must be integers from 1 to {MAX_NGRAM}; "
                          f"got ngrams={ngrams!r}")
    widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
    return widths


def _ngrams(tokens: list[bytes], widths: tuple[int, ...]) -> list[bytes]:
    out: list[bytes] = []
    for n in widths:
        if n == 1:
            out.extend(tokens)
        else:
            join = b" ".join
            out.extend(join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return out


class TextPipeline:
    """Standardize, split and n-gram a batch of strings into token lists (the layer's ``_preprocess``).

    Args:
        standardize: None, one of `STANDARDIZE_MODES`, or a callable taking a NumPy ``str`` array and returning
            an array of the same shape (Keras's contract on non-TensorFlow backends).
        split: None, ``"whitespace"``, ``"character"``, or a callable taking a 1-D NumPy ``str`` array and
            returning one iterable of ``str`` tokens per element.
        ngrams: the widths from `normalize_ngrams`.
    """

    def __init__(self, standardize: Standardize, split: Split, ngrams: tuple[int, ...] | None,
                 where: str = "TextVectorization") -> None:
        if not (standardize is None or callable(standardize) or standardize in STANDARDIZE_MODES):
            raise ConfigError(f"{where}: `standardize` must be None, a callable, or one of {STANDARDIZE_MODES}; "
                              f"got standardize={standardize!r}")
        if not (split is None or callable(split) or split in SPLIT_MODES):
            raise ConfigError(f"{where}: `split` must be None, a callable, or one of {SPLIT_MODES}; "
                              f"got split={split!r}")
        self.standardize = standardize
        self.split = split
        self.ngrams = ngrams
        self.where = where

    def _standardized_bytes(self, arr: np.ndarray) -> list[bytes]:
        """The standardized strings of ``arr`` (any shape), flattened, as UTF-8 bytes."""
        std = self.standardize
        if callable(std):
            out = std(arr.astype(str) if arr.size else arr.astype("U1"))
            out = np.asarray(out)
            if out.shape != arr.shape:
                raise DataError(f"{self.where}: the `standardize` callable returned shape {out.shape} for inputs of "
                                f"shape {arr.shape}; it must keep the shape")
            return [_encode(str(s), self.where) if not isinstance(s, bytes) else s for s in out.ravel().tolist()]
        try:
            encoded = [s.encode("utf-8") for s in arr.ravel().tolist()]
        except UnicodeEncodeError:
            encoded = [_encode(s, self.where) for s in arr.ravel().tolist()]
        if std == "lower_and_strip_punctuation":
            return [b.translate(_LOWER_TABLE, _PUNCT_BYTES) for b in encoded]
        if std == "lower":
            return [b.lower() for b in encoded]
        if std == "strip_punctuation":
            return [b.translate(None, _PUNCT_BYTES) for b in encoded]
        return encoded

    def __call__(self, inputs: np.ndarray) -> tuple[tuple[int, ...], list[list[bytes]], bool]:
        """Tokenize a string array.

        Returns:
            ``(lead_shape, docs, scalar)``: one token list per position of ``lead_shape`` (row-major);
            the int output has shape ``lead_shape + (T,)``, the dense outputs ``lead_shape + (depth,)``.
            ``scalar`` is True for a 0-d input without splitting, whose int output is a 0-d array.
        """
        arr = inputs
        if self.split is None:
            if arr.ndim == 0:
                docs = [self._standardized_bytes(arr)]
                lead: tuple[int, ...] = ()
                scalar = True
            else:
                flat = self._standardized_bytes(arr)
                width = arr.shape[-1]
                lead = tuple(arr.shape[:-1])
                docs = [flat[i:i + width] for i in range(0, len(flat), width)] if width else [[] for _ in
                                                                                               range(int(np.prod(lead)))]
                scalar = False
            if self.ngrams is not None:
                docs = [_ngrams(d, self.ngrams) for d in docs]
            return lead, docs, scalar
        lead, std_bytes = self.standardize_for_split(arr)
        if self.split == "whitespace":
            docs = [b.split() for b in std_bytes]
        elif self.split == "character":
            docs = [list(map(str.encode, b.decode("utf-8"))) for b in std_bytes]
        else:
            docs = self._split_with_callable(std_bytes)
        if self.ngrams is not None:
            docs = [_ngrams(d, self.ngrams) for d in docs]
        return lead, docs, False

    def standardize_for_split(self, arr: np.ndarray) -> tuple[tuple[int, ...], list[bytes]]:
        """Check that ``arr`` is a column of strings (rank 0, 1, or a last axis of 1) and standardize it:
        ``(lead_shape, standardized UTF-8 bytes in row-major order)``."""
        if arr.ndim > 1 and arr.shape[-1] != 1:
            raise DataError(f"{self.where}: to split strings the input must have rank 1 or a last dimension of "
                            f"1; got inputs of shape {arr.shape}")
        lead = tuple(arr.shape[:-1]) if arr.ndim > 1 else tuple(arr.shape)
        return lead, self._standardized_bytes(arr)

    def _split_with_callable(self, std_bytes: list[bytes]) -> list[list[bytes]]:
        texts = np.array([b.decode("utf-8") for b in std_bytes], dtype=str) if std_bytes else np.array([], dtype=str)
        result = self.split(texts)  # type: ignore[operator]  # callable checked in __init__
        rows = list(result)
        if len(rows) != len(std_bytes):
            raise DataError(f"{self.where}: the `split` callable returned {len(rows)} token lists for "
                            f"{len(std_bytes)} strings; it must return one per string")
        docs = []
        for row in rows:
            toks = row.tolist() if isinstance(row, np.ndarray) else list(row)
            docs.append([t if isinstance(t, bytes) else _encode(str(t), self.where) for t in toks])
        return docs


class TokenCounter:
    """What ``adapt`` accumulates: token counts and, for TF-IDF, document counts (Keras's ``update_state``)."""

    def __init__(self, document_counts: bool) -> None:
        self.counts: Counter[bytes] = Counter()
        self.doc_counts: Counter[bytes] | None = Counter() if document_counts else None
        self.num_documents = 0

    def update(self, docs: Sequence[Sequence[bytes]]) -> None:
        self.counts.update(itertools.chain.from_iterable(docs))
        if self.doc_counts is not None:
            self.doc_counts.update(itertools.chain.from_iterable(map(set, docs)))
            self.num_documents += len(docs)

    def ranked_tokens(self, max_learned: int | None) -> list[bytes]:
        """Tokens by count then bytes, both descending, without the mask and OOV tokens; at most ``max_learned``."""
        counts = self.counts
        counts.pop(b"", None)
        counts.pop(OOV_TOKEN.encode(), None)
        ranked = sorted(counts.items(), key=itemgetter(0), reverse=True)
        ranked.sort(key=itemgetter(1), reverse=True)  # stable: equal counts keep the descending token order
        if max_learned is not None:
            ranked = ranked[:max(max_learned, 0)]
        return [t for t, _ in ranked]

    def idf_weights(self, tokens: Sequence[bytes]) -> np.ndarray:
        """``log(1 + N / (1 + df))`` per token, computed in float64 and stored as float32 (as Keras does)."""
        if self.doc_counts is None:
            raise ConfigError("TokenCounter: document counts were not collected")
        df = np.fromiter((self.doc_counts[t] for t in tokens), dtype=np.int64, count=len(tokens))
        return np.log(1.0 + self.num_documents / (1.0 + df)).astype(np.float32)


def tf_reduce_mean_float32(values: np.ndarray) -> np.float32:
    """The mean of float32 ``values`` rounded as TensorFlow's CPU ``reduce_mean`` rounds it (Keras's [UNK] IDF).

    TensorFlow sums with Eigen: above 8192 values the range is halved (at a 16-value boundary) and each half
    summed recursively; below, two accumulators of 16 float32 lanes take alternate packets and are then
    added, a leftover packet joins them, the leftover values go one by one into a scalar, the lanes are
    added as a tree; then one float32 division by the count. Plain ``np.mean`` can differ in the last
    bits (measured against TensorFlow 2.21 on IDF vectors of 599 to 13,810 values: this rule gives the
    same float32 on all of them).
    """
    w = np.ascontiguousarray(values, dtype=np.float32)
    if len(w) == 0:
        return np.float32(0.0)
    return np.float32(_eigen_sum(w, 0, len(w)) / np.float32(len(w)))


_LANES = 16
_LEAF = _LANES * 512


def _eigen_sum(w: np.ndarray, first: int, n: int) -> np.float32:
    if n > _LEAF:
        split = _LANES * -(-(first + -(-n // 2)) // _LANES)  # packet-aligned midpoint, in absolute positions
        left = min(split - first, n)
        acc = np.float32(np.float32(0.0) + _eigen_sum(w, first, left))
        if left < n:
            acc = np.float32(acc + _eigen_sum(w, split, n - left))
        return acc
    x = w[first:first + n]
    unroll = (n // (2 * _LANES)) * 2 * _LANES
    vec = (n // _LANES) * _LANES
    pairs = x[:unroll].reshape(-1, 2, _LANES)
    # cumsum adds strictly in order: the running sums of the two packet accumulators
    acc2 = np.cumsum(pairs, axis=0, dtype=np.float32)[-1] if len(pairs) else np.zeros((2, _LANES), np.float32)
    lanes = (acc2[0] + acc2[1]).astype(np.float32)  # the two accumulators meet before the leftover packet
    if vec != unroll:
        lanes = (lanes + x[unroll:vec]).astype(np.float32)
    tail = np.float32(0.0)
    for v in x[vec:]:
        tail = np.float32(tail + v)
    while len(lanes) > 1:
        lanes = (lanes[: len(lanes) // 2] + lanes[len(lanes) // 2:]).astype(np.float32)
    return np.float32(tail + lanes[0])


class VocabularyIndex:
    """A fixed vocabulary and the lookups of one ``output_mode`` (Keras's ``IndexLookup`` with ``mask_token=""``).

    In ``"int"`` mode index 0 is the mask ``""`` and 1 is ``[UNK]``; in the other modes 0 is ``[UNK]`` and ``""``
    tokens are dropped. Learned tokens follow, in the given order.
    """

    def __init__(self, tokens: Sequence[bytes], output_mode: str, idf_weights: np.ndarray | None = None) -> None:
        self.tokens = list(tokens)
        self.output_mode = output_mode
        self.token_start = 2 if output_mode == "int" else 1
        self.oov_index = 1 if output_mode == "int" else 0
        table = {t: i for i, t in enumerate(self.tokens, start=self.token_start)}
        table[b""] = 0 if output_mode == "int" else -1  # the mask token: index 0, or dropped
        self.table = table
        self.idf_weights = idf_weights

    def __len__(self) -> int:
        return self.token_start + len(self.tokens)

    def vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        words = [t.decode("utf-8") for t in self.tokens]
        if not include_special_tokens:
            return words
        return ([MASK_TOKEN, OOV_TOKEN] if self.output_mode == "int" else [OOV_TOKEN]) + words

    def _lookup(self, docs: Sequence[Sequence[bytes]]) -> tuple[np.ndarray, np.ndarray]:
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        total = int(lengths.sum())
        ids = np.fromiter(map(self.table.get, itertools.chain.from_iterable(docs), itertools.repeat(self.oov_index)),
                          dtype=np.int64, count=total)
        return ids, lengths

    def encode_int(self, lead: tuple[int, ...], docs: Sequence[Sequence[bytes]],
                   sequence_length: int | None) -> np.ndarray:
        """Ids padded with 0 (or truncated) to ``sequence_length`` or the longest row: ``lead + (T,)`` int64."""
        return self.int_from_ids(lead, *self._lookup(docs), sequence_length)

    def encode_dense(self, lead: tuple[int, ...], docs: Sequence[Sequence[bytes]], depth: int) -> np.ndarray:
        """``multi_hot`` / ``count`` / ``tf_idf`` rows of width ``depth``: ``lead + (depth,)`` float32."""
        return self.dense_from_ids(lead, *self._lookup(docs), depth)

    @staticmethod
    def int_from_ids(lead: tuple[int, ...], ids: np.ndarray, lengths: np.ndarray,
                     sequence_length: int | None) -> np.ndarray:
        """`encode_int` from the flat ids of all rows and each row's length."""
        n = len(lengths)
        longest = int(lengths.max()) if n else 0
        width = longest if sequence_length is None else sequence_length
        out = np.zeros((n, width), dtype=np.int64)
        if width and len(ids):
            # one slice copy per row: cheaper than building flat destination indices for every id
            ends = np.cumsum(lengths).tolist()
            start = 0
            for i, (end, length) in enumerate(zip(ends, lengths.tolist())):
                if length:
                    k = min(length, width)
                    out[i, :k] = ids[start:start + k]
                start = end
        return out.reshape(*lead, width)

    def dense_from_ids(self, lead: tuple[int, ...], ids: np.ndarray, lengths: np.ndarray, depth: int) -> np.ndarray:
        """`encode_dense` from the flat ids of all rows (-1: dropped) and each row's length."""
        n = len(lengths)
        rows = np.repeat(np.arange(n), lengths)
        keep = ids >= 0
        if not keep.all():
            ids, rows = ids[keep], rows[keep]
        out = np.zeros((n, depth), dtype=np.float32)
        if self.output_mode == "multi_hot":
            out[rows, ids] = 1.0
        else:
            np.add.at(out, (rows, ids), 1.0)
            if self.output_mode == "tf_idf":
                if self.idf_weights is None:
                    raise ConfigError("TextVectorization: output_mode='tf_idf' needs idf_weights")
                out *= self.idf_weights[:depth]
        return out.reshape(*lead, depth)


def check_token_list(vocabulary: Iterable[Any], where: str) -> list[str]:
    """A user vocabulary (list, tuple, NumPy array) as a list of str; bytes are decoded as UTF-8."""
    out = []
    for i, t in enumerate(vocabulary):
        if isinstance(t, np.str_ | str):
            out.append(str(t))
        elif isinstance(t, bytes):
            out.append(_decode(t, "utf-8", f"{where}: vocabulary entry {i}"))
        else:
            raise ConfigError(f"{where}: vocabulary entry {i} is {type(t).__name__} ({t!r:.40}), expected a string")
    return out
