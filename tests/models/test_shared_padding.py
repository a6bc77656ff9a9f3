"""``predict`` computing the leading padding its rows share once (lstmtext.models.shared_padding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext import layers
from lstmtext.models import Input, Model, Sequential
from lstmtext.models.shared_padding import SharedPadding

VOCAB, T = 50, 24


def _pre_padded(n: int = 70, seed: int = 0) -> np.ndarray:
    """Rows of 1..T+8 tokens padded (or cut) to T at the front, one all-padding row, several unpadded."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, T), dtype=np.int64)
    for i, length in enumerate(rng.integers(1, T + 8, size=n)):
        length = min(int(length), T)
        x[i, T - length:] = rng.integers(1, VOCAB, size=length)
    x[5] = 0
    return x


def _whole(model, x: np.ndarray) -> np.ndarray:
    """The graph's own pass over all rows at once, from step 0."""
    with torch.no_grad():
        return model(torch.as_tensor(x), training=False).numpy()


@pytest.fixture
def starts(monkeypatch):
    """The start step of every batch the shared path ran."""
    seen: list[int] = []
    call = SharedPadding.__call__

    def spy(self, ids, start):
        seen.append(start)
        return call(self, ids, start)

    monkeypatch.setattr(SharedPadding, "__call__", spy)
    return seen


def _stacked(mask_zero: bool = False, between: tuple = ()) -> Sequential:
    torch.manual_seed(0)
    model = Sequential([layers.Embedding(VOCAB, 8, mask_zero=mask_zero), *between,
                        layers.LSTM(6, return_sequences=True), layers.Dropout(0.5), layers.LSTM(5),
                        layers.Dropout(0.5), layers.Dense(3, activation="softmax")])
    model.build((None, T))
    for p in model.parameters():  # weights large enough that every step moves the states
        p.data.mul_(3.0)
    return model


@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("between", [lambda: (), lambda: (layers.SpatialDropout1D(0.3),),
                                     lambda: (layers.Dense(7, activation="relu", name="step_dense"),)],
                         ids=["fused", "spatial-dropout", "dense"])
def test_predict_equals_the_whole_pass_and_skips_the_shared_padding(starts, mask_zero, between):
    model = _stacked(mask_zero, between())
    x = _pre_padded()
    got = model.predict(x, batch_size=16, verbose=0)
    np.testing.assert_allclose(got, _whole(model, x), atol=1e-5)
    assert len(starts) == 5 and starts == sorted(starts, reverse=True) and starts[0] > 0 and starts[-1] == 0


def test_a_start_past_the_shared_padding_would_change_the_outputs():
    # The comparison above has power: running a batch from one step too late gives other outputs.
    model = _stacked()
    x = _pre_padded()
    runner = model.shared_padding(torch.as_tensor(x))
    ids = torch.as_tensor(x[x[:, 0] == 0][:8])
    start = int(runner.leading(ids).min())
    with torch.no_grad():
        at, late = runner(ids, start).numpy(), runner(ids, start + 1).numpy()
    np.testing.assert_allclose(at, _whole(model, ids.numpy()), atol=1e-5)
    assert np.abs(late - at).max() > 1e-3


def test_leading_padding_counts_and_the_last_step_always_runs():
    runner = _stacked().shared_padding(torch.zeros(2, T, dtype=torch.long))
    ids = torch.tensor([[0] * (T - 2) + [3, 4], [7] + [0] * (T - 1), [0] * T])
    assert runner.leading(ids).tolist() == [T - 2, 0, T - 1]


def test_predict_with_steps_and_a_functional_chain(starts):
    inp = Input((T,), dtype="int64")
    h = layers.LSTM(6, return_sequences=True)(layers.Embedding(VOCAB, 8)(inp))
    model = Model(inp, layers.Dense(1, activation="sigmoid")(layers.LSTM(4)(h)))
    x = _pre_padded(seed=1)
    got = model.predict(x, batch_size=10, steps=3, verbose=0)
    np.testing.assert_allclose(got, _whole(model, x[:30]), atol=1e-5)
    assert len(starts) == 3


def test_post_padded_rows_take_the_whole_pass(starts):
    model = _stacked()
    x = _pre_padded()[:, ::-1].copy()  # padding after the tokens: nothing shared at the front
    np.testing.assert_allclose(model.predict(x, batch_size=16, verbose=0), _whole(model, x), atol=1e-6)
    assert starts == []


@pytest.mark.parametrize("build", [
    lambda: [layers.Embedding(VOCAB, 8), layers.LSTM(4, go_backwards=True), layers.Dense(1)],
    lambda: [layers.Embedding(VOCAB, 8), layers.Bidirectional(layers.LSTM(4)), layers.Dense(1)],
    lambda: [layers.Embedding(VOCAB, 8), layers.LSTM(4, return_sequences=True), layers.GlobalMaxPooling1D(),
             layers.Dense(1)],
    lambda: [layers.Embedding(VOCAB, 8), layers.GlobalAveragePooling1D(), layers.Dense(1)],
], ids=["go-backwards", "bidirectional", "pooled-sequence", "no-lstm"])
def test_models_that_read_the_padding_differently_are_not_run_from_a_later_step(build, starts):
    model = Sequential(build())
    model.build((None, T))
    x = _pre_padded()
    assert model.shared_padding(torch.as_tensor(x)) is None
    np.testing.assert_allclose(model.predict(x, batch_size=16, verbose=0), _whole(model, x), atol=1e-6)
    assert starts == []


def test_the_cache_of_padding_states_follows_the_weights():
    model = _stacked()
    x = torch.as_tensor(_pre_padded())
    runner = model.shared_padding(x)
    rows = x[x[:, :4].eq(0).all(dim=1)][:8]
    with torch.no_grad():
        runner(rows, 4)
        model.layers[1].cell.recurrent_kernel.mul_(0.5)  # an in-place update, as an optimizer step makes
        np.testing.assert_allclose(runner(rows, 4).numpy(), _whole(model, rows.numpy()), atol=1e-5)


def test_evaluate_and_validation_take_the_shared_padding_with_the_same_results(starts, monkeypatch):
    model = _stacked()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = _pre_padded(n=90, seed=2)
    y = np.random.default_rng(2).integers(0, 3, size=len(x))

    def whole(xs, ys):
        with monkeypatch.context() as m:
            m.setattr(type(model), "shared_padding", lambda self, x: None)
            return model.evaluate(xs, ys, batch_size=16, verbose=0, return_dict=True)

    want = whole(x, y)
    assert starts == []
    got = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert len(starts) == 6 and max(starts) > 0
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k], abs=1e-6) for k in got)
    history = model.fit(x[:60], y[:60], batch_size=16, epochs=1, validation_data=(x[60:], y[60:]), verbose=0)
    assert len(starts) == 8  # the two validation batches
    val = whole(x[60:], y[60:])
    assert history.history["val_loss"][0] == pytest.approx(val["loss"], abs=1e-6)
    assert history.history["val_accuracy"][0] == pytest.approx(val["accuracy"], abs=1e-6)


def test_evaluate_keeps_the_batches_where_a_loss_depends_on_them(starts, monkeypatch):
    # A "sum" reduction makes the reported loss depend on which rows share a batch: no reordering there, but
    # each batch still starts at the padding its own rows share.
    from lstmtext.losses import SparseCategoricalCrossentropy

    model = _stacked()
    model.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(reduction="sum"), metrics=["accuracy"])
    x = _pre_padded(n=90, seed=3)
    x[:48, :T // 2] = 0  # the first three batches share at least half their steps of padding
    y = np.random.default_rng(3).integers(0, 3, size=len(x))
    leading = model.shared_padding(torch.as_tensor(x)).leading(torch.as_tensor(x))
    natural = [int(leading[lo:lo + 16].min()) for lo in range(0, len(x), 16)]
    with monkeypatch.context() as m:
        m.setattr(type(model), "shared_padding", lambda self, x: None)
        want = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    got = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert starts == natural and min(natural[:3]) >= T // 2
    assert all(got[k] == pytest.approx(want[k], rel=1e-6) for k in want)
