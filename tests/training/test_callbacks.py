"""Callbacks with Keras's arguments and rules."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lstmtext.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from lstmtext.layers import Dense, Dropout, Embedding, GlobalAveragePooling1D
from lstmtext.models import Sequential, load_model
from lstmtext.optimizers import SGD, Adam
from lstmtext.utils import set_random_seed


def _data(n: int = 64):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(n, 6))
    return x, (x[:, 0] > 15).astype("float32")


def _model(dropout: float = 0.0) -> Sequential:
    return Sequential([Embedding(30, 6), GlobalAveragePooling1D(), Dropout(dropout), Dense(1, activation="sigmoid")])


class _Feed(Callback):
    """Overwrites the monitored value with a scripted sequence (EarlyStopping/ReduceLROnPlateau rules)."""

    def __init__(self, values: list[float], key: str = "val_loss") -> None:
        super().__init__()
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def test_early_stopping_patience_and_restore_best_weights():
    x, y = _data()
    model = _model()
    model.compile(optimizer=SGD(0.1), loss="binary_crossentropy")
    snapshots = []
    keep = LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(model.get_weights()))
    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    hist = model.fit(x, y, epochs=10, verbose=0, validation_data=(x, y),
                     callbacks=[_Feed([1.0, 0.5, 0.6, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]), es, keep])
    assert hist.epoch == [0, 1, 2, 3]  # no improvement in epochs 2 and 3 -> stop after epoch 3
    assert es.stopped_epoch == 3 and es.best_epoch == 1
    for a, b in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_mode_auto_maximises_accuracy():
    x, y = _data()
    model = _model()
    model.compile(optimizer=SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    es = EarlyStopping(monitor="val_accuracy", patience=1)
    hist = model.fit(x, y, epochs=6, verbose=0, validation_data=(x, y),
                     callbacks=[_Feed([0.5, 0.7, 0.6, 0.9, 0.9, 0.9], "val_accuracy"), es])
    assert hist.epoch == [0, 1, 2]


def test_reduce_lr_on_plateau():
    x, y = _data()
    model = _model()
    model.compile(optimizer=Adam(0.01), loss="binary_crossentropy")
    rl = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=1, min_lr=0.002)
    hist = model.fit(x, y, epochs=6, verbose=0, validation_data=(x, y),
                     callbacks=[_Feed([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), rl])
    # Keras's rule (checked against Keras 3): the cooldown counter is decremented before the wait
    # check, so with cooldown=1 the rate halves every epoch from epoch 1 until it reaches min_lr.
    assert hist.history["learning_rate"] == pytest.approx([0.01, 0.01, 0.005, 0.0025, 0.002, 0.002])
    assert model.optimizer.learning_rate == pytest.approx(0.002)


def test_model_checkpoint_best_only_and_keep_last(tmp_path):
    x, y = _data()
    model = _model()
    model.compile(optimizer=Adam(), loss="binary_crossentropy", metrics=["accuracy"])
    best = ModelCheckpoint(tmp_path / "best", monitor="val_loss", save_best_only=True)
    rolling = ModelCheckpoint(str(tmp_path / "ep{epoch:02d}"), keep_last=2)
    model.fit(x, y, epochs=4, verbose=0, validation_data=(x, y),
              callbacks=[_Feed([0.9, 0.5, 0.7, 0.8]), best, rolling])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "ep03", "ep04"]
    assert best.best == 0.5
    restored = load_model(tmp_path / "ep04")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=0)
    assert restored.compiled and type(restored.optimizer).__name__ == "Adam"


def test_model_checkpoint_weights_only(tmp_path):
    x, y = _data()
    model = _model()
    model.compile(optimizer=Adam(), loss="binary_crossentropy")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "w.safetensors",
                                                                      save_weights_only=True)])
    other = _model()
    other.build((None, 6))
    other.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    x, y = _data()
    model = _model()
    model.compile(optimizer=Adam(), loss="binary_crossentropy", metrics=["accuracy"])
    path = tmp_path / "log.csv"
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[CSVLogger(path)])
    model.fit(x, y, epochs=3, initial_epoch=2, verbose=0, validation_split=0.25,
              callbacks=[CSVLogger(path, append=True)])
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert float(rows[-1]["loss"]) == pytest.approx(model.history.history["loss"][-1])


def test_lambda_callback_hooks_and_stop_training():
    x, y = _data()
    model = _model()
    model.compile(optimizer=Adam(), loss="binary_crossentropy")
    calls: list[str] = []

    def stop(batch, logs):
        calls.append(f"b{batch}")
        if batch == 1:
            model.stop_training = True

    cb = LambdaCallback(on_train_begin=lambda logs: calls.append("begin"), on_train_batch_end=stop,
                        on_epoch_end=lambda e, logs: calls.append(f"e{e}"))
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[cb])
    assert calls == ["begin", "b0", "b1", "e0"]
    with pytest.raises(Exception, match="unknown hook 'on_banana'"):
        LambdaCallback(on_banana=print)


def test_terminate_on_nan():
    x, y = _data()
    model = _model()
    model.compile(optimizer=SGD(1e30), loss="mse")
    hist = model.fit(x, y * 1e20, batch_size=8, epochs=2, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(hist.epoch) == 1


def test_resume_from_a_mid_epoch_checkpoint_is_bit_exact(tmp_path):
    x, y = _data(96)

    def fresh() -> Sequential:
        m = _model(dropout=0.4)
        m.compile(optimizer=Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
        return m

    set_random_seed(11)
    full = fresh()
    full.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25)

    class Crash(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.train_state.epoch == 1 and batch == 3:
                raise KeyboardInterrupt

    set_random_seed(11)
    first = fresh()
    ckpt = ModelCheckpoint(tmp_path / "step{batch}", save_freq=4)
    with pytest.raises(KeyboardInterrupt):
        first.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25, callbacks=[ckpt, Crash()])
    # 5 steps per epoch: saves after global steps 4 (epoch 1, batch 4) and 8 (epoch 2, batch 3),
    # then the crash at epoch 2, batch 4.
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["step3", "step4"]
    set_random_seed(999)  # whatever the process does before resuming must not matter
    resumed = fresh()
    hist = resumed.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25,
                       resume_from=tmp_path / "step3")
    for a, b in zip(resumed.get_weights(), full.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert hist.history == full.history.history
