"""`BPTTStream`: a token stream cut into batches for truncated backpropagation through time.

The corpus is one long sequence of token ids (documents concatenated, each starting with the start id).
As fastai's ``LMDataLoader`` does, it is cut into ``batch_size`` contiguous rows of equal length; batch
``k`` holds, for every row, the next window of ``seq_len`` tokens and their successors, so the LSTM state
at the end of a batch is the right initial state of the next one (carried, gradients cut). The window
length varies as in AWD-LSTM: ``bptt`` with probability 0.95, else ``bptt / 2``, then drawn from a normal
of standard deviation 5 (at least 5 tokens), so that the cut points move from epoch to epoch.

The lengths of an epoch come from a generator seeded with ``(seed, epoch)``: a stream restarted at
``(epoch, step)`` in another process yields exactly the batches the first one would have.
Only the windows of a batch are read from ``tokens`` (a ``numpy.memmap`` stays on disk).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lstmtext.errors import DataError


@dataclass(frozen=True)
class Batch:
    """One BPTT window: ``x`` and ``y`` are int64 ``(batch_size, seq_len)``; ``y[:, t]`` follows ``x[:, t]``."""

    x: np.ndarray
    y: np.ndarray
    step: int

    @property
    def tokens(self) -> int:
        """Number of predicted tokens in the batch."""
        return int(self.y.size)


class BPTTStream:
    """Batches of BPTT windows over a token array (see the module docstring).

    Args:
        tokens: 1-D integer array (or memmap) of token ids.
        batch_size: number of parallel rows.
        bptt: the base window length (AWD-LSTM: 70).
        vary: vary the window length as AWD-LSTM (False: every window is ``bptt`` long, the last shorter).
        seed: seed of the window lengths.
        name: what the tokens are, for error messages (e.g. the corpus file).

    Raises:
        DataError: the stream holds less than one window per row.

    >>> s = BPTTStream(np.arange(1000), batch_size=4, bptt=10, vary=False)
    >>> b = next(iter(s.epoch(0)))
    >>> b.x.shape, int(b.x[1, 0]), int(b.y[1, 0])
    ((4, 10), 249, 250)
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, bptt: int, *, vary: bool = True, seed: int = 0,
                 name: str = "corpus") -> None:
        for flag, v in (("batch_size", batch_size), ("bptt", bptt)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise DataError(f"{name}: {flag} must be a positive integer, got {v!r}")
        self.tokens, self.batch_size, self.bptt, self.vary, self.seed = tokens, batch_size, bptt, vary, seed
        n = int(len(tokens))
        if n == 0:
            raise DataError(f"{name}: the corpus is empty (no tokens)")
        # Each row needs one window plus the token that follows it.
        self.row_len = (n - 1) // batch_size
        if self.row_len < bptt + 1:
            raise DataError(
                f"{name}: {n:,} tokens is shorter than one BPTT window per row: batch_size {batch_size} x "
                f"(bptt {bptt} + 1) = {batch_size * (bptt + 1):,} tokens needed; use a smaller --batch-size or "
                "--bptt, or a larger corpus")
        self.starts = np.arange(batch_size, dtype=np.int64) * self.row_len

    def lengths(self, epoch: int) -> list[int]:
        """The window lengths of ``epoch``, in order (they cover ``row_len - 1`` tokens of each row)."""
        total = self.row_len - 1
        if not self.vary:
            full, rest = divmod(total, self.bptt)
            return [self.bptt] * full + ([rest] if rest else [])
        rng = np.random.default_rng([self.seed, epoch])
        out, pos = [], 0
        while pos < total:
            base = self.bptt if rng.random() < 0.95 else self.bptt / 2
            n = max(5, int(rng.normal(base, 5)))
            n = min(n, total - pos, int(self.bptt * 1.5))  # cap: bounded memory for a long draw
            out.append(n)
            pos += n
        return out

    def steps(self, epoch: int) -> int:
        """Number of batches in ``epoch``."""
        return len(self.lengths(epoch))

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """Yield the batches of ``epoch`` from batch ``start_step`` on (0-based)."""
        lengths = self.lengths(epoch)
        pos = int(sum(lengths[:start_step]))
        for step in range(start_step, len(lengths)):
            n = lengths[step]
            idx = self.starts[:, None] + pos + np.arange(n + 1, dtype=np.int64)  # (B, n + 1)
            window = np.asarray(self.tokens[idx], dtype=np.int64)
            yield Batch(window[:, :-1], window[:, 1:], step)
            pos += n

    @property
    def tokens_per_epoch(self) -> int:
        """Predicted tokens in one epoch."""
        return (self.row_len - 1) * self.batch_size
