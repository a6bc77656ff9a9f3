"""`pad_sequences`: Keras's ``keras.utils.pad_sequences``, same results, faster.

Converting Python ints is the bulk of the work. Keras makes a temporary array per sequence and copies
it into the output; here numeric sequences are converted straight into their output rows, which
measured faster than both that and a one-pass ``np.fromiter`` + scatter (``bench/bench_data.py``).
Sequences of vectors (items with a shape), string/object dtypes and inputs that fail on the fast path
take a per-sequence path that follows Keras line by line, so errors are Keras's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike


def _truncate(s: Any, maxlen: int, truncating: str) -> Any:
    # Keras's slicing, quirks included: s[-0:] is the whole sequence.
    return s[-maxlen:] if truncating == "pre" else s[:maxlen]


def _fill_rows(
    x: np.ndarray, sequences: Sequence[Sequence[Any]], maxlen: int, padding: str, truncating: str
) -> np.ndarray:
    """Fast path for flat numeric sequences: numpy converts each (truncated) list straight into its row
    slice, skipping the temporary array Keras makes per sequence."""
    pre_pad = padding == "pre"
    for i, s in enumerate(sequences):
        n = len(s)
        if not n:
            continue
        if isinstance(s, np.ndarray) and s.ndim != 1:
            raise ValueError("not a flat sequence")  # numpy would squeeze a (1, 1) array in: use Keras's path
        if isinstance(s, str | bytes):
            raise ValueError("not a flat sequence")  # numpy would parse "12" as one number: Keras's path raises
        if n > maxlen:
            s, n = (s[-maxlen:] if truncating == "pre" else s[:maxlen]), maxlen
        if pre_pad:
            x[i, maxlen - n :] = s
        else:
            x[i, :n] = s
    return x


def pad_sequences(
    sequences: Sequence[Sequence[Any]],
    maxlen: int | None = None,
    dtype: DTypeLike = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pad (and truncate) sequences to one length, exactly like ``keras.utils.pad_sequences``.

    Sequences shorter than ``maxlen`` are filled with ``value`` before (``padding="pre"``) or after
    (``"post"``) their items; longer ones lose items at the start (``truncating="pre"``) or the end
    (``"post"``). The output length is ``maxlen``, or the longest sequence's length when it is None.

    One difference: a bad ``padding``/``truncating`` string raises even when every sequence is empty
    (Keras only notices it on the first non-empty sequence).

    Args:
        sequences: a list (or array) of sequences (lists, tuples or arrays) of numbers, or of
            equally shaped items (e.g. vectors).
        maxlen: output length; None for the longest sequence.
        dtype: output dtype. Default ``"int32"``; use ``object`` for variable-length strings.
        padding: ``"pre"`` or ``"post"``: where to add ``value``.
        truncating: ``"pre"`` or ``"post"``: where to cut long sequences.
        value: the padding value. Default ``0.0`` (0 in an int array).

    Returns:
        Array of shape ``(len(sequences), maxlen) + item_shape``.

    Raises:
        ValueError: bad ``padding``/``truncating``, a non-iterable item, items of different shapes, a
            string ``value`` with a numeric dtype, or ``maxlen=None`` with no sequences.

    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2)
    array([[0, 1],
           [2, 3],
           [5, 6]], dtype=int32)
    >>> pad_sequences([[1], [2, 3]], padding="post", value=-1)
    array([[ 1, -1],
           [ 2,  3]], dtype=int32)
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    num_samples = len(sequences)

    lengths = []
    sample_shape: tuple[int, ...] = ()
    flag = True
    # Keras takes the item shape from the first non-empty sequence.
    for x in sequences:
        try:
            lengths.append(len(x))
            if flag and len(x):
                sample_shape = np.asarray(x).shape[1:]
                flag = False
        except TypeError as e:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: {x!s}") from e

    if maxlen is None:
        if not lengths:
            raise ValueError("pad_sequences: maxlen=None needs at least one sequence to take the length from")
        maxlen = int(max(lengths))
    elif isinstance(maxlen, bool) or not isinstance(maxlen, int | np.integer) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be a non-negative integer or None, got {maxlen!r}")
    maxlen = int(maxlen)

    is_dtype_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_dtype_str:
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
            "You should set `dtype=object` for variable length strings."
        )

    x = np.full((num_samples, maxlen) + sample_shape, value, dtype=dtype)
    # maxlen=0 is left to the per-sequence path: there Keras's s[-0:] keeps whole sequences, and what
    # numpy then accepts into 0 columns is a quirk best reproduced by doing the same thing.
    if sample_shape == () and x.dtype.kind in "biuf" and maxlen > 0:
        try:
            return _fill_rows(x, sequences, maxlen, padding, truncating)
        except (TypeError, ValueError, OverflowError):
            x = np.full((num_samples, maxlen), value, dtype=dtype)  # redo Keras's way for its exact error

    for idx, s in enumerate(sequences):
        if not len(s):
            continue  # empty list/array was found
        trunc = np.asarray(_truncate(s, maxlen, truncating), dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {trunc.shape[1:]} of sequence at position {idx} is different from expected "
                f"shape {sample_shape}"
            )
        if padding == "post":
            x[idx, : len(trunc)] = trunc
        else:
            x[idx, -len(trunc) :] = trunc
    return x


def pad_flat(
    ids: np.ndarray,
    offsets: np.ndarray,
    maxlen: int,
    dtype: DTypeLike = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0,
) -> np.ndarray:
    """`pad_sequences` of the sequences ``ids[offsets[i]:offsets[i + 1]]``, without Python lists.

    For flat numeric sequences (what `lstmtext.text.Tokenizer.texts_to_flat` gives) and ``maxlen >= 1``;
    the result equals ``pad_sequences([list(ids[a:b]) ...], maxlen, dtype, padding, truncating, value)``.
    Every row is placed with a few whole-array numpy operations instead of a Python loop over the rows.

    >>> pad_flat(np.array([1, 2, 3, 4, 5, 6]), np.array([0, 1, 3, 6]), maxlen=2)
    array([[0, 1],
           [2, 3],
           [5, 6]], dtype=int32)
    """
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    if isinstance(maxlen, bool) or not isinstance(maxlen, int | np.integer) or maxlen < 1:
        raise ValueError(f"pad_flat: maxlen must be a positive integer, got {maxlen!r}")
    ids, offsets = np.asarray(ids), np.asarray(offsets, dtype=np.int64)
    if ids.ndim != 1 or offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids) \
            or np.any(np.diff(offsets) < 0):
        raise ValueError("pad_flat: expected 1-D ids and non-decreasing offsets from 0 to len(ids)")
    lengths = np.diff(offsets)
    keep = np.minimum(lengths, maxlen)
    src = offsets[:-1] + (lengths - keep if truncating == "pre" else 0)
    dst = np.arange(len(lengths), dtype=np.int64) * maxlen + (maxlen - keep if padding == "pre" else 0)
    # position of every kept item within its row's kept run
    run_start = np.repeat(np.cumsum(keep) - keep, keep)
    within = np.arange(int(keep.sum()), dtype=np.int64) - run_start
    x = np.full((len(lengths), maxlen), value, dtype=dtype)
    x.reshape(-1)[np.repeat(dst, keep) + within] = ids[np.repeat(src, keep) + within]
    return x
