"""The training loop's behaviour: reproducibility, splits, logs, progress output, resume hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext.layers import Dense, Dropout, Embedding, GlobalAveragePooling1D
from lstmtext.models import Input, Sequential
from lstmtext.optimizers import Adam
from lstmtext.training.data import epoch_permutation
from lstmtext.utils import set_random_seed


def _data(n: int = 96, t: int = 6, vocab: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, t))
    y = (x[:, 0] > vocab // 2).astype("float32")
    return x, y


def _model(vocab: int = 30, dropout: float = 0.3) -> Sequential:
    return Sequential([Embedding(vocab, 6), GlobalAveragePooling1D(), Dropout(dropout), Dense(4, activation="relu"),
                       Dense(1, activation="sigmoid")])


def _run(seed: int) -> tuple[list[float], list[np.ndarray]]:
    set_random_seed(seed)
    model = _model()
    model.compile(optimizer=Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    losses: list[float] = []
    from lstmtext.callbacks import LambdaCallback

    cb = LambdaCallback(on_train_batch_end=lambda batch, logs: losses.append(logs["loss"]))
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0, callbacks=[cb])
    return losses, model.get_weights()


def test_same_seed_repeats_bit_for_bit_and_another_seed_differs():
    losses1, w1 = _run(7)
    losses2, w2 = _run(7)
    assert losses1 == losses2  # exact equality, dropout and shuffling included
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    losses3, _ = _run(8)
    assert losses3 != losses1


def test_validation_split_holds_out_the_last_fraction_before_shuffling():
    x, y = _data(n=40)
    seen: list[torch.Tensor] = []
    model = Sequential([Input((6,), dtype="int64"), Embedding(30, 4), GlobalAveragePooling1D(), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    original = model.train_step

    def spy(xb, yb, swb):
        seen.append(xb.clone())
        return original(xb, yb, swb)

    model.train_step = spy  # type: ignore[method-assign]
    hist = model.fit(x, y, batch_size=8, epochs=1, validation_split=0.25, verbose=0)
    trained = torch.cat(seen).numpy()
    assert trained.shape[0] == 30
    # Exactly the first 30 rows, in a shuffled order.
    assert sorted(map(tuple, trained)) == sorted(map(tuple, x[:30]))
    assert not np.array_equal(trained, x[:30])
    # The validation loss is the loss on the last 10 rows.
    assert hist.history["val_loss"][0] == pytest.approx(model.evaluate(x[30:], y[30:], verbose=0), abs=1e-6)


def test_epoch_permutations_depend_only_on_seed_and_epoch():
    a, b = epoch_permutation(5, 0, 100), epoch_permutation(5, 0, 100)
    assert torch.equal(a, b)
    assert not torch.equal(a, epoch_permutation(5, 1, 100))
    state = torch.get_rng_state()
    epoch_permutation(5, 2, 100)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is untouched


def test_history_has_keras_keys_and_one_value_per_epoch():
    x, y = _data()
    model = _model(dropout=0.0)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "auc"])
    hist = model.fit(x, y, batch_size=32, epochs=3, validation_data=(x[:20], y[:20]), verbose=0)
    assert list(hist.history) == ["accuracy", "auc", "loss", "val_accuracy", "val_auc", "val_loss"]
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2]
    assert model.history is hist
    assert all(isinstance(v, float) for v in hist.history["loss"])


def test_initial_epoch_and_epochs_follow_keras():
    x, y = _data()
    model = _model()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    hist = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert hist.epoch == [1, 2]


def test_verbose_prints_config_then_bar_with_metrics(capsys):
    x, y = _data()
    model = _model()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=2, validation_split=0.25, verbose=1)
    out = capsys.readouterr().out
    assert out.index("Training configuration:") < out.index("Epoch 1/2")
    assert "batch_size: 32" in out and "train_samples: 72" in out and "validation_samples: 24" in out
    assert '"epsilon": 1e-07' in out
    last = [ln for ln in out.splitlines() if ln.startswith("3/3")][-1]
    assert "━" * 20 in last and "/step - accuracy: " in last and " - val_loss: " in last


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = _data()
    model = _model()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=2, verbose=2)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("3/3")]
    assert len(lines) == 2
    assert all("━" not in ln and " - loss: " in ln for ln in lines)


def test_verbose_0_prints_nothing(capsys):
    x, y = _data()
    model = _model()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_predict_shape_and_no_dropout_at_inference():
    x, _ = _data()
    model = _model(dropout=0.5)
    p1, p2 = model.predict(x, batch_size=7, verbose=0), model.predict(x, batch_size=50, verbose=0)
    assert p1.shape == (96, 1) and p1.dtype == np.float32
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(x[:5]), p1[:5], atol=1e-6)


def test_train_on_batch_and_test_on_batch():
    x, y = _data()
    model = _model(dropout=0.0)
    model.compile(optimizer=Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    before = model.test_on_batch(x, y)
    for _ in range(20):
        model.train_on_batch(x, y)
    after = model.test_on_batch(x, y)
    assert len(before) == 2 and after[0] < before[0]


def test_sample_weight_zero_removes_samples_from_the_loss():
    x, y = _data()
    model = _model(dropout=0.0)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    sw = np.zeros(len(x))
    sw[:10] = 1.0
    # Keras divides by the number of samples, not by the sum of the weights.
    weighted = model.evaluate(x, y, sample_weight=sw, batch_size=len(x), verbose=0)
    first = model.evaluate(x[:10], y[:10], batch_size=10, verbose=0)
    assert weighted == pytest.approx(first * 10 / len(x), rel=1e-5)


def test_training_state_tracks_position_for_resume():
    x, y = _data()
    model = _model()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    st = model.train_state
    assert (st.epoch, st.step_in_epoch, st.global_step) == (2, 0, 6)
    assert set(st.history) == {"loss"} and len(st.history["loss"]) == 2
    js, tensors = model.training_state()
    assert js["train_state"]["global_step"] == 6 and "torch_cpu" in js["rng"]
    assert any(k.startswith("metrics.loss.") for k in tensors)
    assert model.optimizer.iterations == 6
