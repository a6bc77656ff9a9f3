"""The exported graph gives real Keras's numbers: same weights in Keras 3 (torch backend), padded inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from lstmtext.export import OnnxModel, to_onnx
from lstmtext.layers import LSTM, Bidirectional, Dense, Embedding
from lstmtext.models import Sequential

pytestmark = pytest.mark.keras


def _padded() -> np.ndarray:
    x = np.random.default_rng(3).integers(1, 40, size=(6, 10))
    x[1, :6] = 0  # left padding
    x[2, 4:] = 0  # right padding
    x[3] = 0  # fully padded
    x[4, 2:7] = 0  # a gap
    x[5, :-1] = 0  # one real step
    return x


@pytest.mark.parametrize("merge_mode, backwards", [("concat", False), ("ave", True)])
def test_masked_bidirectional_stack_matches_keras(tmp_path, merge_mode, backwards):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    torch.manual_seed(0)
    ours = Sequential([Embedding(40, 7, mask_zero=True),
                       Bidirectional(LSTM(8, return_sequences=True), merge_mode=merge_mode),
                       LSTM(6, go_backwards=backwards), Dense(1, activation="sigmoid")])
    ours.build((None, None))
    theirs = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(40, 7, mask_zero=True),
                               keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True),
                                                          merge_mode=merge_mode),
                               keras.layers.LSTM(6, go_backwards=backwards),
                               keras.layers.Dense(1, activation="sigmoid")])
    rng = np.random.default_rng(0)
    weights = [rng.normal(scale=0.6, size=w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x = _padded()
    expected = np.asarray(theirs(x.astype("int32"), training=False).detach().cpu())
    got = OnnxModel(to_onnx(ours, tmp_path / "m.onnx").path)(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert len(np.unique(got.round(4))) >= 5  # the rows really differ (padding changes the result)
