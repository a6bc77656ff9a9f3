"""Bad input gets a typed error that names the argument, the value and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from lstmtext.errors import ConfigError, DataError
from lstmtext.layers import LSTM, Dense, Embedding, GlobalAveragePooling1D
from lstmtext.models import Input, Sequential


def _model(out: int = 1, act: str = "sigmoid") -> Sequential:
    return Sequential([Embedding(20, 4), GlobalAveragePooling1D(), Dense(out, activation=act)])


X = np.random.default_rng(0).integers(1, 20, size=(12, 5))
Y = np.arange(12) % 2


def test_fit_before_compile():
    with pytest.raises(ConfigError, match=r"fit: the model must be compiled first"):
        _model().fit(X, Y)
    with pytest.raises(ConfigError, match=r"evaluate: the model must be compiled first"):
        _model().evaluate(X, Y)


def test_x_and_y_length_mismatch():
    m = _model()
    m.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(DataError, match=r"x and y must have the same number of samples, got 12 inputs and 11 targets"):
        m.fit(X, Y[:11])
    with pytest.raises(DataError, match=r"validation_data\[0\] and validation_data\[1\] must have the same number"):
        m.fit(X, Y, validation_data=(X, Y[:3]))


def test_labels_out_of_range_for_the_loss():
    m = _model()
    m.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(DataError, match=r"y: binary_crossentropy needs labels in \[0, 1\], got values from 0 to 3"):
        m.fit(X, np.arange(12) % 4)
    m3 = _model(3, "softmax")
    m3.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(DataError, match=r"y: sparse_categorical_crossentropy needs class ids in \[0, 3\).*from 0 to 4"):
        m3.fit(X, np.arange(12) % 5)
    with pytest.raises(DataError, match=r"needs integer class ids"):
        m3.fit(X, (np.arange(12) % 3) + 0.5)
    m3.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(DataError, match=r"y: categorical_crossentropy needs one-hot targets of shape \(n, 3\)"):
        m3.fit(X, np.arange(12) % 3)


def test_wrong_input_rank():
    m = Sequential([Input((5,), dtype="int32"), Embedding(20, 4), LSTM(3), Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    with pytest.raises(DataError, match=r"x: expected inputs of shape \(None, 5\) \(rank 2\), got shape \(12, 5, 2\)"):
        m.fit(X[:, :, None].repeat(2, axis=2), Y)
    lazy = Sequential([Embedding(20, 4), LSTM(3), Dense(1)])
    lazy.compile(optimizer="adam", loss="mse")
    with pytest.raises(DataError, match=r"x: the model cannot take inputs of shape \(12, 5, 2\): .*3-D input"):
        lazy.fit(X[:, :, None].repeat(2, axis=2), Y)


def test_token_ids_outside_the_vocabulary():
    m = _model()
    m.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(DataError, match=r"x: token ids must lie in \[0, 20\) for embedding.*got ids from 1 to 25"):
        m.fit(np.concatenate([X[:-1], np.full((1, 5), 25)]), Y)
    with pytest.raises(DataError, match=r"x: token ids must lie in \[0, 20\)"):
        m.predict(-X)


def test_ragged_sequences_ask_for_padding():
    m = _model()
    m.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(DataError, match=r"x: .*pad them first"):
        m.fit([[1, 2, 3], [4, 5]], [0, 1])


@pytest.mark.parametrize("kind,value,pattern", [
    ("loss", "binary_crossentropyy", r"loss: unknown loss 'binary_crossentropyy'"),
    ("metrics", ["acuracy"], r"metrics: unknown metric 'acuracy'"),
    ("optimizer", "adamm", r"optimizer: unknown optimizer 'adamm'"),
])
def test_unknown_names(kind, value, pattern):
    args = {"optimizer": "adam", "loss": "mse", "metrics": None}
    args[kind] = value
    with pytest.raises(ConfigError, match=pattern):
        _model().compile(**args)


def test_bad_fit_arguments():
    m = _model()
    m.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ConfigError, match=r"batch_size must be a positive integer, got 0"):
        m.fit(X, Y, batch_size=0)
    with pytest.raises(ConfigError, match=r"validation_split must be a number in \(0, 1\), got 1.5"):
        m.fit(X, Y, validation_split=1.5)
    with pytest.raises(ConfigError, match=r"pass class_weight or sample_weight, not both"):
        m.fit(X, Y, class_weight={0: 1.0}, sample_weight=np.ones(12))
    with pytest.raises(ConfigError, match=r"verbose must be 'auto', 0, 1 or 2, got 3"):
        m.fit(X, Y, verbose=3)
    with pytest.raises(ConfigError, match=r"compile: metrics must be a list"):
        m.compile(optimizer="adam", loss="mse", metrics="accuracy")


def test_optimizer_arguments_are_checked():
    from lstmtext.optimizers import SGD, Adam

    with pytest.raises(ConfigError, match=r"Adam: learning_rate must be a non-negative number, got -1"):
        Adam(learning_rate=-1)
    with pytest.raises(ConfigError, match=r"only one of clipnorm, clipvalue and global_clipnorm"):
        SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ConfigError, match=r"a torch.optim optimizer cannot be used"):
        import torch

        _model().compile(optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), loss="mse")
