"""Length-bucketed batches for ``fit(..., bucket_by_length=True)``: similar lengths together, padded per batch.

Padded token arrays (``pad_sequences`` output) spend most of their steps on padding: IMDB reviews padded to
300 tokens are about 60 % padding on average. Bucketing keeps the *same samples* and the same number of
steps per epoch, but groups samples of similar length into a batch and cuts each batch down to its longest
sample, so the LSTM runs far fewer timesteps.

How an epoch's batches are formed (a function of the shuffle seed and the epoch only, so a resumed run
replays it): the usual epoch permutation is cut into chunks of ``batch_size * chunk_batches`` samples;
each chunk is sorted by length (stable) and cut into batches; then the order of all batches is shuffled,
so that a model never sees a run of short batches followed by a run of long ones.

Lengths come from the padding itself: id 0 is padding, as in Keras. The padding side is detected from the
data (``padding='pre'``, Keras's default: zeros before the tokens; ``'post'``: zeros after) and a batch
keeps the last (``'pre'``) or first (``'post'``) ``max length`` columns, so no real token is ever cut.

What changes: with an ``Embedding(mask_zero=True)`` model the padding steps are masked anyway and each
batch computes exactly what it computes unbucketed. Without a mask the LSTM no longer reads the padding
steps that were cut, which is a different (and usually no worse) computation: report it apart from
identical-data comparisons.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lstmtext.errors import ConfigError, DataError
from lstmtext.training.data import ArrayData, epoch_permutation

#: Batches per sorted chunk: large enough that a chunk's sorted lengths cut into tight batches, small
#: enough that every batch still mixes samples from across the epoch.
CHUNK_BATCHES = 50


def padded_lengths(x: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Real lengths of zero-padded id rows, and the padding side.

    Args:
        x: ``(samples, time)`` integer ids, 0 = padding.

    Returns:
        ``(lengths, side)``: ``(samples,)`` int64 lengths (columns from the first to the last non-zero id),
        and ``"pre"`` or ``"post"``.

    Raises:
        DataError: ``x`` is not 2-D integer ids, or some rows are padded before and others after.

    >>> padded_lengths(torch.tensor([[0, 0, 5, 6], [0, 7, 8, 9]]))
    (tensor([2, 3]), 'pre')
    """
    if x.dim() != 2 or x.is_floating_point() or x.dtype == torch.bool:
        raise DataError(f"bucket_by_length: x must be (samples, time) integer token ids, got {x.dtype} "
                        f"of shape {tuple(x.shape)}")
    steps = x.shape[1]
    real = x != 0
    any_real = real.any(dim=1)
    cols = torch.arange(steps, device=x.device)
    first = torch.where(real, cols, steps).amin(dim=1)
    last = torch.where(real, cols, -1).amax(dim=1)
    lengths = torch.where(any_real, last - first + 1, 0)
    lead_pad = bool((first[any_real] > 0).any()) if steps else False
    trail_pad = bool((last[any_real] < steps - 1).any()) if steps else False
    if lead_pad and trail_pad:
        raise DataError(
            "bucket_by_length: x mixes rows padded before their tokens and rows padded after them; pad all "
            "rows one way (pad_sequences(..., padding='pre') or padding='post') or fit without bucketing"
        )
    return lengths, ("post" if trail_pad else "pre")


class BucketedBatches:
    """The batches of one training set, bucketed by length (see the module docstring).

    Args:
        data: the training data (``data.x`` 2-D token ids).
        batch_size: samples per batch.
        chunk_batches: batches per sorted chunk.

    >>> data = ArrayData(torch.tensor([[0, 1], [2, 3], [0, 4], [5, 6]]), torch.zeros(4))
    >>> [tuple(xb.shape) for xb, _, _ in BucketedBatches(data, 2).epoch(seed=0, epoch=0, shuffle=False)]
    [(2, 1), (2, 2)]
    """

    def __init__(self, data: ArrayData, batch_size: int, chunk_batches: int = CHUNK_BATCHES) -> None:
        if not isinstance(chunk_batches, int) or chunk_batches < 1:
            raise ConfigError(f"bucket_by_length: chunk_batches must be a positive integer, got {chunk_batches!r}")
        self.data, self.batch_size, self.chunk_batches = data, batch_size, chunk_batches
        self.lengths, self.side = padded_lengths(data.x)
        self.lengths = self.lengths.cpu()

    def batch_indices(self, seed: int | None, epoch: int, shuffle: bool) -> list[torch.Tensor]:
        """The sample indices of every batch of ``epoch``, in the order they are trained on."""
        n = len(self.data)
        order = epoch_permutation(seed or 0, epoch, n) if shuffle else torch.arange(n)
        chunk = self.batch_size * self.chunk_batches
        batches: list[torch.Tensor] = []
        for lo in range(0, n, chunk):
            part = order[lo:lo + chunk]
            part = part[torch.sort(self.lengths[part], stable=True).indices]
            batches.extend(part.split(self.batch_size))
        if shuffle:
            g = torch.Generator().manual_seed((int(seed or 0) * 1_000_003 + int(epoch) + 7_919) % (2**63))
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        return batches

    def epoch(self, seed: int | None, epoch: int, shuffle: bool, start: int = 0, stop: int | None = None
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
        """Yield ``(x, y, sample_weight)`` for batches ``start .. stop-1`` of ``epoch``, each cut to its
        longest sample (at least one column)."""
        batches = self.batch_indices(seed, epoch, shuffle)
        stop = len(batches) if stop is None else min(stop, len(batches))
        d, steps = self.data, self.data.x.shape[1]
        for b in range(start, stop):
            idx = batches[b]
            width = max(1, int(self.lengths[idx].max()))
            idx = idx.to(d.x.device)
            cols = slice(steps - width, steps) if self.side == "pre" else slice(0, width)
            yield (d.x[idx, cols],
                   None if d.y is None else d.y[idx],
                   None if d.sample_weight is None else d.sample_weight[idx])

    def padded_fraction(self) -> float:
        """Fraction of the padded array's tokens that are padding (what bucketing can save, at most)."""
        total = self.data.x.numel()
        return 1.0 - float(self.lengths.sum()) / total if total else 0.0
