"""BatchNormalization against real Keras 3 (torch backend): training and inference outputs, the moving
statistics after a training call, masked statistics, gradients, the frozen (``trainable=False``) mode;
and its config, weights and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext.errors import ConfigError
from lstmtext.layers import BatchNormalization, deserialize, serialize

ATOL = 1e-5


def _pair(keras, x, **kw):
    """A Keras and an lstmtext layer built on ``x`` with the same random weights (Keras's order)."""
    theirs, ours = keras.layers.BatchNormalization(**kw), BatchNormalization(**kw)
    theirs(torch.tensor(x))
    ours(torch.tensor(x))
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()]
    weights[-1] = np.abs(weights[-1]) + 0.5  # a variance
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert [tuple(w.shape) for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    return theirs, ours


def _close(a, b, what):
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, atol=ATOL, rtol=1e-5, err_msg=what)


@pytest.mark.keras
@pytest.mark.parametrize(("shape", "kw", "masked"), [
    ((8, 5), {}, False),
    ((4, 6, 5), {"momentum": 0.9, "epsilon": 1e-2}, False),
    ((4, 6, 5), {}, True),
    ((4, 6, 5), {"axis": 1, "center": False}, False),
    ((8, 5), {"scale": False}, False),
])
def test_matches_keras_in_training_and_inference(keras, shape, kw, masked):
    x = np.random.default_rng(0).normal(loc=2.0, scale=3.0, size=shape).astype("float32")
    mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [1, 1, 1, 0, 0, 0]], bool)
    theirs, ours = _pair(keras, x, **kw)
    r = torch.tensor(np.random.default_rng(2).normal(size=shape).astype("float32"))
    kx, ox = torch.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    m = {"mask": torch.tensor(mask)} if masked else {}
    k_out, o_out = theirs(kx, training=True, **m), ours(ox, training=True, **m)
    _close(o_out, k_out, "training output")
    for o, k in zip(ours.get_weights(), theirs.get_weights()):
        _close(o, k, "weights after a training call (moving statistics)")
    (k_out * r).sum().backward()
    (o_out * r).sum().backward()
    _close(ox.grad, kx.grad, "input gradient")
    k_vars = [v.value for v in theirs.trainable_weights]
    o_vars = [p for p in ours.weights if p.requires_grad]
    assert len(k_vars) == len(o_vars)
    for o, k in zip(o_vars, k_vars):
        _close(o.grad, k.grad, "weight gradient")
    _close(ours(torch.tensor(x), training=False), theirs(torch.tensor(x), training=False), "inference output")


@pytest.mark.keras
def test_a_frozen_layer_uses_its_moving_statistics_in_training_as_keras(keras):
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    theirs, ours = _pair(keras, x)
    theirs.trainable = False
    ours.trainable = False
    before = [w.copy() for w in ours.get_weights()]
    _close(ours(torch.tensor(x), training=True), theirs(torch.tensor(x), training=True), "frozen output")
    for a, b in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_moving_statistics_are_never_trainable():
    bn = BatchNormalization()
    bn(torch.ones(2, 3))
    assert [n for n, p in bn.named_parameters() if p.requires_grad] == ["gamma", "beta"]
    bn.trainable = False
    assert not any(p.requires_grad for p in bn.parameters())
    bn.trainable = True
    assert [n for n, p in bn.named_parameters() if p.requires_grad] == ["gamma", "beta"]
    assert [n for n, _ in bn.named_parameters()] == ["gamma", "beta", "moving_mean", "moving_variance"]


def test_config_round_trip_and_errors():
    bn = BatchNormalization(axis=1, momentum=0.9, epsilon=1e-4, center=False, name="bn")
    again = deserialize(serialize(bn))
    assert again.get_config() == bn.get_config()
    for bad in ({"momentum": 1.5}, {"epsilon": 0}, {"axis": "x"}):
        with pytest.raises(ConfigError, match="BatchNormalization"):
            BatchNormalization(**bad)
    with pytest.raises(ConfigError, match="batch axis"):
        BatchNormalization(axis=0)(torch.ones(2, 3))
    bn = BatchNormalization()
    bn(torch.ones(2, 3))
    with pytest.raises(ConfigError, match="expected 3 features"):
        bn(torch.ones(2, 4))
