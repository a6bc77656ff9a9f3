"""Keras's ``load_data`` steps on a `RankedCorpus`: shuffle, offsets, start char, maxlen, num_words cut.

Vectorized on flat rank arrays (no per-word Python loop), then handed out as Keras does: 1-D object
arrays of Python lists. `keras_sequences` is shared by the IMDB loader and the loader for your own data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmtext.data.corpus import RankedCorpus, RankedSplit
from lstmtext.errors import ConfigError


def _check_int(caller: str, name: str, value: Any, *, minimum: int, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        what = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ConfigError(f"{caller}: {name} must be {what}, got {value!r}")


def check_options(
    num_words: Any,
    skip_top: Any,
    maxlen: Any,
    start_char: Any,
    oov_char: Any,
    index_from: Any,
    *,
    caller: str = "load_data",
) -> None:
    """Validate the ``load_data`` options; `ConfigError` naming ``caller``, the argument and its value."""
    _check_int(caller, "num_words", num_words, minimum=1, optional=True)
    _check_int(caller, "skip_top", skip_top, minimum=0, optional=False)
    _check_int(caller, "maxlen", maxlen, minimum=0, optional=True)
    _check_int(caller, "start_char", start_char, minimum=0, optional=True)
    _check_int(caller, "oov_char", oov_char, minimum=0, optional=True)
    _check_int(caller, "index_from", index_from, minimum=0, optional=False)


def _ragged_take(split: RankedSplit, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder reviews: (flat int64 ranks, offsets) of reviews ``order[0], order[1], ...``."""
    lengths = np.diff(split.offsets)[order]
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Output position p of review j reads split.ranks[start_j + (p - offsets[j])].
    idx = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - split.offsets[:-1][order], lengths)
    return split.ranks[idx].astype(np.int64), offsets


def _prepend(flat: np.ndarray, offsets: np.ndarray, value: int) -> tuple[np.ndarray, np.ndarray]:
    """Put ``value`` at the start of every review."""
    n = len(offsets) - 1
    new_offsets = offsets + np.arange(n + 1, dtype=np.int64)
    out = np.empty(len(flat) + n, dtype=np.int64)
    body = np.ones(len(out), dtype=bool)
    body[new_offsets[:-1]] = False
    out[~body] = value
    out[body] = flat
    return out, new_offsets


def _to_object_array(flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """1-D object array of Python int lists (what Keras returns), even when all lists have one length."""
    values, bounds = flat.tolist(), offsets.tolist()
    out = np.empty(len(bounds) - 1, dtype=object)
    for i in range(len(out)):
        out[i] = values[bounds[i] : bounds[i + 1]]
    return out


def keras_sequences(
    corpus: RankedCorpus,
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``keras.datasets.imdb.load_data``'s steps on ``corpus`` (options already checked by `check_options`).

    Returns:
        ``(x_train, y_train), (x_test, y_test)`` as `lstmtext.data.imdb.load_data` documents them.
    """
    rng = np.random.RandomState(seed)
    parts = []
    for split in (corpus.train, corpus.test):
        order = np.arange(len(split))
        rng.shuffle(order)
        flat, offsets = _ragged_take(split, order)
        flat += index_from
        if start_char is not None:
            flat, offsets = _prepend(flat, offsets, start_char)
        parts.append((flat, offsets, split.labels[order]))

    if maxlen:
        for k, (flat, offsets, labels) in enumerate(parts):
            keep = np.flatnonzero(np.diff(offsets) < maxlen)
            parts[k] = (*_ragged_take(RankedSplit(flat, offsets, labels), keep), labels[keep])
        if not len(parts[0][2]) or not len(parts[1][2]):
            raise ConfigError(
                f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. Increase maxlen."
            )

    if not num_words:
        num_words = max((int(p[0].max()) for p in parts if len(p[0])), default=0)
    out = []
    for flat, offsets, labels in parts:
        keep = (flat >= skip_top) & (flat < num_words)
        if oov_char is not None:
            flat = np.where(keep, flat, oov_char)
        else:
            review = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
            flat = flat[keep]
            offsets = np.zeros_like(offsets)
            np.cumsum(np.bincount(review[keep], minlength=len(offsets) - 1), out=offsets[1:])
        out.append((_to_object_array(flat, offsets), labels))
    return out[0], out[1]


def keras_num_words(corpus: RankedCorpus, num_words: int | None, start_char: int | None, index_from: int) -> int:
    """The ``num_words`` ``load_data`` works with: ``num_words``, or for None Keras's "largest id present"
    (computed without ``maxlen``; at least 1)."""
    if num_words:
        return int(num_words)
    ranks = [int(s.ranks.max()) for s in (corpus.train, corpus.test) if len(s.ranks)]
    return max([r + index_from for r in ranks] + ([start_char] if start_char is not None else []) + [1])
