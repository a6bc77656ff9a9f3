"""Every Functional text layer in one Functional model, against the same model in real Keras (torch backend):
Keras's weights copied in, ``count_params`` equal, predictions within 1e-5 on padded ids (a fully padded
row included), weights within 1e-5 after 3 Adam steps.

It needs the Functional API (``lstmtext.Input`` / ``lstmtext.Model``) and skips without it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmtext
from lstmtext import layers as L
from lstmtext import optimizers as O

pytestmark = pytest.mark.keras


def _build(lib, model_cls, input_fn):
    inp = input_fn(shape=(None,), dtype="int32")
    e = lib.Embedding(50, 8, mask_zero=True)(inp)
    e = lib.SpatialDropout1D(0.0)(e)                               # rate 0: the same numbers in training
    s = lib.Bidirectional(lib.LSTM(6, return_sequences=True))(e)
    c = lib.Attention(use_scale=True)([s, s])
    a = lib.AdditiveAttention()([s, c])
    m = lib.Concatenate()([s, c, a])
    m = lib.Activation("relu")(lib.TimeDistributed(lib.Dense(5, activation="tanh"))(m))
    p1, p2 = lib.GlobalAveragePooling1D()(m), lib.GlobalMaxPooling1D()(m)
    x = lib.Multiply()([lib.Add()([p1, p2]), lib.Dense(5)(p1)])
    d = lib.Dot(axes=1, normalize=True)([x, p2])
    r = lib.LSTM(3)(lib.RepeatVector(2)(x))
    out = lib.Dense(1, activation="sigmoid")(lib.Concatenate()([r, d, lib.Average()([p1, p2])]))
    return model_cls(inp, out)


def test_functional_model_of_every_layer_matches_keras(keras):
    if not hasattr(lstmtext, "Input") or not hasattr(lstmtext, "Model"):
        pytest.skip("needs the Functional API (lstmtext.Input, lstmtext.Model)")
    keras.utils.set_random_seed(0)
    theirs = _build(keras.layers, keras.Model, keras.Input)
    ours = _build(L, lstmtext.Model, lstmtext.Input)
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(theirs.get_weights())

    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (5, 9))
    ids[0, :4] = 0                                                 # left padded
    ids[1, 6:] = 0                                                 # right padded
    ids[2] = 0                                                     # fully padded: NaN in both (0/0 average)
    np.testing.assert_allclose(ours.predict(ids, verbose=0), theirs.predict(ids, verbose=0), atol=1e-5, rtol=0)

    # The gradient of every weight, through every layer and mask.
    real, y = ids[[0, 1, 3, 4]], np.array([0, 1, 1, 0], "float32")
    for model in (theirs, ours):
        p = model(torch.tensor(real), training=True).squeeze(-1)
        torch.nn.functional.binary_cross_entropy(p, torch.tensor(y)).backward()
    k_vars = [v.value for v in theirs.trainable_weights]
    for i, (a, b) in enumerate(zip(ours.weights, k_vars)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-5, rtol=0, err_msg=f"gradient {i}")
    for w in [*ours.weights, *k_vars]:
        w.grad = None

    # Adam at Keras's default rate. Adam divides by sqrt(v) + 1e-7, so a gradient near 1e-7 (one kernel entry
    # here, a cancellation) turns float32 round-off into update differences up to the rate: keep it small.
    theirs.compile(optimizer=keras.optimizers.Adam(0.001), loss="binary_crossentropy")
    ours.compile(optimizer=O.Adam(0.001), loss="binary_crossentropy")
    for _ in range(3):
        theirs.train_on_batch(real, y)
    ours.fit(real, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    for i, (a, b) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        np.testing.assert_allclose(a, np.asarray(b), atol=1e-5, rtol=0, err_msg=f"weight {i}")
