"""fit(bucket_by_length=True): the same samples each epoch, batches cut to their longest sample, no token lost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext.errors import DataError
from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models import Sequential
from lstmtext.preprocessing.sequence import pad_sequences
from lstmtext.training.bucketing import BucketedBatches, padded_lengths
from lstmtext.training.data import ArrayData
from lstmtext.utils import set_random_seed


def _reviews(n: int, maxlen: int, seed: int = 0, padding: str = "pre", longest: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seqs = [list(rng.integers(1, 40, rng.integers(1, (longest or maxlen + 10) + 1))) for _ in range(n)]
    x = pad_sequences(seqs, maxlen=maxlen, padding=padding)
    return x, (x[:, -5:].sum(axis=1) % 2).astype("float32")


def test_padded_lengths_pre_post_and_empty_rows():
    lengths, side = padded_lengths(torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4], [0, 0, 0, 0]]))
    assert lengths.tolist() == [2, 4, 0] and side == "pre"
    lengths, side = padded_lengths(torch.tensor([[3, 4, 0, 0], [1, 0, 0, 0]]))
    assert lengths.tolist() == [2, 1] and side == "post"
    with pytest.raises(DataError, match="mixes rows padded before"):
        padded_lengths(torch.tensor([[0, 3, 4], [3, 4, 0]]))
    with pytest.raises(DataError, match="integer token ids"):
        padded_lengths(torch.zeros(2, 3))


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_every_sample_once_and_no_real_token_cut(padding):
    x, y = _reviews(530, 40, padding=padding)
    data = ArrayData(torch.from_numpy(x).long(), torch.from_numpy(y))
    bucketed = BucketedBatches(data, 32, chunk_batches=4)
    seen, widths = [], []
    for xb, yb, _ in bucketed.epoch(seed=5, epoch=1, shuffle=True):
        assert xb.shape[0] == yb.shape[0] and xb.shape[0] <= 32
        widths.append(xb.shape[1])
        seen.append(xb)
    assert len(seen) == int(np.ceil(530 / 32))  # as many steps as without bucketing
    idx = torch.cat(bucketed.batch_indices(5, 1, True))
    assert sorted(idx.tolist()) == list(range(530))
    # The batches hold exactly the samples' tokens: cropping only removed padding.
    for xb, ids in zip(seen, bucketed.batch_indices(5, 1, True)):
        assert int((xb != 0).sum()) == int((data.x[ids] != 0).sum())
        kept = data.x[ids][:, -xb.shape[1]:] if padding == "pre" else data.x[ids][:, :xb.shape[1]]
        assert torch.equal(xb, kept)
    assert sum(widths) < 0.8 * 40 * len(widths)  # much less padding than the padded array


def test_order_depends_on_seed_and_epoch_only():
    x, y = _reviews(300, 30)
    data = ArrayData(torch.from_numpy(x).long(), torch.from_numpy(y))
    a = BucketedBatches(data, 16)
    b = BucketedBatches(data, 16)
    assert all(torch.equal(p, q) for p, q in zip(a.batch_indices(3, 0, True), b.batch_indices(3, 0, True)))
    first = torch.cat(a.batch_indices(3, 0, True))
    assert not torch.equal(first, torch.cat(a.batch_indices(3, 1, True)))
    assert torch.equal(torch.cat(a.batch_indices(3, 0, False)).sort().values, torch.arange(300))


def test_masked_model_computes_the_same_on_a_cropped_batch():
    # With mask_zero=True the cut padding steps were masked: outputs and gradients are unchanged.
    x, y = _reviews(64, 40, longest=30)
    set_random_seed(0)
    model = Sequential([Embedding(40, 6, mask_zero=True), LSTM(5), Dense(1, activation="sigmoid")])
    xt = torch.from_numpy(x).long()
    data = ArrayData(xt, torch.from_numpy(y))
    bucketed = BucketedBatches(data, 64)
    xb, _, _ = next(bucketed.epoch(seed=0, epoch=0, shuffle=False))
    assert xb.shape[1] < 40
    full = model(xt[bucketed.batch_indices(0, 0, False)[0]], training=True)  # same rows, sorted by length
    g_full = torch.autograd.grad(full.sum(), list(model.parameters()))
    cut = model(xb, training=True)
    g_cut = torch.autograd.grad(cut.sum(), list(model.parameters()))
    torch.testing.assert_close(cut, full, atol=1e-6, rtol=1e-5)
    for a, b in zip(g_cut, g_full):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_fit_with_bucketing_learns_and_keeps_the_step_count():
    x, y = _reviews(400, 30, seed=1)
    set_random_seed(1)
    model = Sequential([Embedding(40, 8, input_length=30), LSTM(6), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    steps = []

    from lstmtext.callbacks import LambdaCallback

    count = LambdaCallback(on_train_batch_end=lambda batch, logs: steps.append(batch))
    hist = model.fit(x, y, batch_size=32, epochs=3, verbose=0, validation_split=0.2, bucket_by_length=True,
                     callbacks=[count])
    assert len(steps) == 3 * int(np.ceil(320 / 32))
    assert hist.history["loss"][-1] < hist.history["loss"][0]
