"""Weights against real Keras: parameter counts, regularization losses, constraints, weight layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext.layers import LSTM, Bidirectional, keras_to_torch_lstm_weights, torch_to_keras_lstm_weights

B, T, F = 3, 5, 4


@pytest.mark.keras
@pytest.mark.parametrize(("units", "use_bias"), [(1, True), (10, True), (7, False)])
def test_param_count_matches_keras(keras, units, use_bias):
    theirs = keras.layers.LSTM(units, use_bias=use_bias)
    theirs.build((None, T, 15))
    ours = LSTM(units, use_bias=use_bias)
    ours.build((None, T, 15))
    assert ours.count_params() == theirs.count_params()
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    if use_bias:
        assert ours.count_params() == 4 * (units * (15 + units) + units)


@pytest.mark.keras
def test_regularization_losses_match_keras(keras):
    kw = dict(return_sequences=True, return_state=True)
    theirs = keras.layers.LSTM(
        4, kernel_regularizer=keras.regularizers.L2(0.01), recurrent_regularizer=keras.regularizers.L1(0.02),
        bias_regularizer=keras.regularizers.L1L2(0.03, 0.04), activity_regularizer=keras.regularizers.L2(0.05),
        **kw)
    ours = LSTM(4, kernel_regularizer={"class_name": "L2", "config": {"l2": 0.01}},
                recurrent_regularizer={"class_name": "L1", "config": {"l1": 0.02}},
                bias_regularizer={"class_name": "L1L2", "config": {"l1": 0.03, "l2": 0.04}},
                activity_regularizer={"class_name": "L2", "config": {"l2": 0.05}}, **kw)
    theirs.build((B, T, F))
    ours.build((B, T, F))
    rng = np.random.default_rng(0)
    theirs.set_weights([rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    x = rng.normal(size=(B, T, F)).astype("float32")
    theirs(x)
    ours(x)
    assert len(ours.losses) == len(theirs.losses) == 3 + 3  # three weights, then output, h and c
    def values(losses):
        return sorted(float(v.detach()) for v in losses)

    np.testing.assert_allclose(values(ours.losses), values(theirs.losses), rtol=1e-5)


@pytest.mark.keras
@pytest.mark.parametrize("name", ["max_norm", "non_neg", "unit_norm", "min_max_norm"])
def test_constraints_match_keras(keras, name):
    ours = LSTM(4, kernel_constraint=name, recurrent_constraint=name, bias_constraint=name)
    ours.build((B, T, F))
    rng = np.random.default_rng(1)
    weights = [rng.normal(scale=2.0, size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    ours.apply_constraints()
    constraint = keras.constraints.get(name)
    for got, w in zip(ours.get_weights(), weights):
        np.testing.assert_allclose(got, np.asarray(constraint(torch.from_numpy(w))), atol=1e-6)


def test_torch_layout_mapping_reproduces_torch_lstm():
    """The documented mapping makes torch.nn.LSTM compute the same sequence as the Keras-layout layer."""
    layer = LSTM(6, return_sequences=True, return_state=True, use_cudnn=False)
    x = torch.randn(B, T, F)
    out, h, c = layer(x)
    ref = torch.nn.LSTM(F, 6, batch_first=True)
    with torch.no_grad():
        for name, value in keras_to_torch_lstm_weights(layer.cell.kernel, layer.cell.recurrent_kernel,
                                                       layer.cell.bias).items():
            getattr(ref, name).copy_(value)
    ref_out, (ref_h, ref_c) = ref(x)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, ref_h[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(c, ref_c[0], atol=1e-5, rtol=0)
    k, r, b = torch_to_keras_lstm_weights(ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0)
    torch.testing.assert_close(k, layer.cell.kernel)
    torch.testing.assert_close(r, layer.cell.recurrent_kernel)
    torch.testing.assert_close(b, layer.cell.bias)


def test_mapping_keeps_gradients_and_handles_no_bias():
    kernel = torch.randn(F, 8, requires_grad=True)
    w = keras_to_torch_lstm_weights(kernel, torch.randn(2, 8), None)
    assert torch.equal(w["bias_ih_l0"], torch.zeros(8)) and torch.equal(w["bias_hh_l0"], torch.zeros(8))
    w["weight_ih_l0"].sum().backward()
    assert torch.equal(kernel.grad, torch.ones(F, 8))


def test_bidirectional_weights_are_forward_then_backward():
    bi = Bidirectional(LSTM(3))
    bi.build((B, T, F))
    names = [n for n, _ in bi.named_parameters()]
    assert names == ["forward_layer.cell.kernel", "forward_layer.cell.recurrent_kernel", "forward_layer.cell.bias",
                     "backward_layer.cell.kernel", "backward_layer.cell.recurrent_kernel",
                     "backward_layer.cell.bias"]
    assert bi.forward_layer.name.startswith("forward_") and bi.backward_layer.go_backwards
