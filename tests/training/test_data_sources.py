"""fit/evaluate/predict on Python generators, torch DataLoaders and Keras-style PyDatasets; subclassed models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext import layers
from lstmtext.errors import ConfigError
from lstmtext.models import Model, Sequential
from lstmtext.utils import PyDataset

VOCAB, T, N, B = 30, 5, 40, 8


def _data():
    rng = np.random.default_rng(0)
    return rng.integers(0, VOCAB, (N, T)).astype("int64"), rng.integers(0, 2, (N, 1)).astype("float32")


def _model():
    torch.manual_seed(0)
    model = Sequential([layers.Input((T,), dtype="int32"), layers.Embedding(VOCAB, 4), layers.LSTM(3),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    return model


class Batches(PyDataset):
    def __init__(self, x, y=None):
        super().__init__()
        self.x, self.y, self.epochs_ended = x, y, 0

    def __len__(self):
        return len(self.x) // B

    def __getitem__(self, i):
        part = slice(i * B, (i + 1) * B)
        return self.x[part] if self.y is None else (self.x[part], self.y[part])

    def on_epoch_end(self):
        self.epochs_ended += 1


def _sources(x, y):
    def generator():
        while True:
            for i in range(0, N, B):
                yield x[i:i + B], y[i:i + B]

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y)),
                                         batch_size=B, shuffle=False)
    return {"generator": (generator(), N // B), "dataloader": (loader, None), "pydataset": (Batches(x, y), None)}


@pytest.mark.parametrize("kind", ["generator", "dataloader", "pydataset"])
def test_batches_from_a_source_train_as_the_same_arrays(kind):
    x, y = _data()
    reference = _model()
    want = reference.fit(x, y, batch_size=B, epochs=2, shuffle=False, verbose=0).history
    source, steps = _sources(x, y)[kind]
    model = _model()
    val = _sources(x, y)[kind][0] if kind != "generator" else (x, y)
    got = model.fit(source, epochs=2, steps_per_epoch=steps, validation_data=val, verbose=0).history
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"], want["accuracy"])
    assert "val_loss" in got
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    if kind == "pydataset":
        assert source.epochs_ended >= 2
        np.testing.assert_allclose(model.predict(Batches(x), verbose=0), reference.predict(x, verbose=0), atol=1e-6)
    if kind == "dataloader":
        assert model.evaluate(source, verbose=0)[0] == pytest.approx(reference.evaluate(x, y, verbose=0)[0], rel=1e-5)


def test_a_source_with_targets_beside_it_is_refused():
    x, y = _data()
    with pytest.raises(ConfigError, match="batches hold the targets"):
        _model().fit(Batches(x, y), y, verbose=0)
    with pytest.raises(ConfigError, match="validation_split needs arrays"):
        _model().fit(Batches(x, y), validation_split=0.2, verbose=0)


class Classifier(Model):
    """A subclassed model with Python control flow in call()."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.embed = layers.Embedding(VOCAB, 4, mask_zero=True)
        self.rnn = layers.LSTM(units)
        self.head = layers.Dense(1, activation="sigmoid")
        self.dropout = layers.Dropout(0.5)

    def call(self, inputs, training=None):
        h = self.rnn(self.embed(inputs))
        if training:
            h = self.dropout(h, training=training)
        return self.head(h)


def test_subclassed_model_trains_evaluates_predicts_and_round_trips_weights(tmp_path):
    x, y = _data()
    torch.manual_seed(0)
    model = Classifier(name="clf")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=B, epochs=2, validation_data=(x, y), verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert model.count_params() == 4 * VOCAB + 4 * 3 * (4 + 3 + 1) + 4
    assert [la.name for la in model.layers] == [model.embed.name, model.rnn.name, model.head.name,
                                               model.dropout.name]
    probs = model.predict(x, verbose=0)
    assert probs.shape == (N, 1)
    model.save_weights(tmp_path / "clf.weights.safetensors")
    again = Classifier()
    again.build((None, T))
    again.load_weights(tmp_path / "clf.weights.safetensors")
    np.testing.assert_array_equal(again.predict(x, verbose=0), probs)


def test_subclassed_model_with_two_inputs_and_outputs():
    class TwoHeads(Model):
        def __init__(self):
            super().__init__()
            self.embed = layers.Embedding(VOCAB, 4)
            self.pool = layers.GlobalAveragePooling1D()
            self.a, self.b = layers.Dense(1, name="a"), layers.Dense(2, activation="softmax", name="b")

        def call(self, inputs):
            h = self.pool(self.embed(inputs["left"])) + self.pool(self.embed(inputs["right"]))
            return {"a": self.a(h), "b": self.b(h)}

    x, _ = _data()
    model = TwoHeads()
    model.compile(optimizer="adam", loss={"a": "mse", "b": "sparse_categorical_crossentropy"},
                  metrics={"b": ["accuracy"]})
    y = {"a": np.zeros((N, 1)), "b": np.ones((N,))}
    logs = model.fit({"left": x, "right": x[::-1]}, y, batch_size=B, epochs=1, verbose=0).history
    assert set(logs) == {"loss", "a_loss", "b_loss", "b_accuracy"}
    out = model.predict({"left": x, "right": x[::-1]}, verbose=0)
    assert out["a"].shape == (N, 1) and out["b"].shape == (N, 2)
