"""One harness for every layer, like Keras's ``run_layer_test``: shape, parameter count, config and weights
round trip through JSON, one training step (gradients, optimizer, constraints), on CPU and on CUDA."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from layer_testing import run_layer_test

from lstmtext.layers import (
    LSTM,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    LSTMCell,
    Masking,
    deserialize,
    serialize,
)

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]


def _lstm_params(units, input_dim, use_bias=True):
    return 4 * (units * (input_dim + units) + (units if use_bias else 0))


def _seq(b=4, t=7, f=6):
    return torch.randn(b, t, f)


LEFT_PADDED = torch.tensor([[0, 0, 1, 1, 1, 1, 1]] * 2 + [[1] * 7] + [[0] * 7], dtype=torch.bool)

CASES = {
    "lstm": (lambda: LSTM(10), _seq(), (4, 10), _lstm_params(10, 6), None),
    "lstm_all_options": (
        lambda: LSTM(8, return_sequences=True, return_state=True, dropout=0.5, recurrent_dropout=0.5, seed=1,
                     kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l1_l2",
                     activity_regularizer="l2", kernel_constraint="max_norm", recurrent_constraint="unit_norm",
                     bias_constraint="non_neg"),
        _seq(), [(4, 7, 8), (4, 8), (4, 8)], _lstm_params(8, 6), LEFT_PADDED),
    "lstm_backwards_stateful_time_major": (
        lambda: LSTM(5, go_backwards=True, stateful=True, time_major=True, return_sequences=True),
        _seq(7, 4, 6), (7, 4, 5), _lstm_params(5, 6), None),
    "lstm_relu_nobias_unrolled": (
        lambda: LSTM(5, activation="relu", recurrent_activation="hard_sigmoid", use_bias=False, unroll=True),
        _seq(), (4, 5), _lstm_params(5, 6, use_bias=False), LEFT_PADDED),
    "bidirectional_concat": (lambda: Bidirectional(LSTM(7)), _seq(), (4, 14), 2 * _lstm_params(7, 6), LEFT_PADDED),
    "bidirectional_sum_sequences_states": (
        lambda: Bidirectional(LSTM(3, return_sequences=True, return_state=True), merge_mode="sum"),
        _seq(), [(4, 7, 3), (4, 3), (4, 3), (4, 3), (4, 3)], 2 * _lstm_params(3, 6), None),
    "bidirectional_none": (
        lambda: Bidirectional(LSTM(3), merge_mode=None), _seq(), [(4, 3), (4, 3)], 2 * _lstm_params(3, 6), None),
    "dense": (lambda: Dense(3, activation="relu"), torch.randn(4, 6), (4, 3), 21, None),
    "embedding": (lambda: Embedding(50, 6, mask_zero=True), torch.randint(0, 50, (4, 7)), (4, 7, 6), 300, None),
    "dropout": (lambda: Dropout(0.5), _seq(), (4, 7, 6), 0, None),
    "masking": (lambda: Masking(), _seq(), (4, 7, 6), 0, None),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_layer(case, device):
    make, x, shape, params, mask = CASES[case]
    run_layer_test(make, x, shape, params, mask=mask, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_lstm_cell_step(device):
    cell = LSTMCell(4)
    x = torch.randn(3, 5, device=device)
    h, (h2, c2) = cell(x, [torch.zeros(3, 4, device=device), torch.zeros(3, 4, device=device)])
    assert h.shape == (3, 4) and h is h2 and c2.shape == (3, 4)
    assert cell.count_params() == _lstm_params(4, 5)
    assert deserialize(json.loads(json.dumps(serialize(cell)))).get_config() == cell.get_config()


@pytest.mark.parametrize("device", DEVICES)
def test_cell_steps_equal_the_sequence_layer(device):
    """The readable cell, stepped by hand with Keras's masking rule, gives the sequence layer's numbers."""
    layer = LSTM(4, return_sequences=True, use_cudnn=False)
    x = torch.randn(3, 6, 5, device=device)
    mask = torch.tensor([[0, 1, 1, 0, 1, 1], [1] * 6, [0] * 6], dtype=torch.bool, device=device)
    seq = layer(x, mask=mask)
    h = c = torch.zeros(3, 4, device=device)
    prev = torch.zeros(3, 4, device=device)
    for t in range(6):
        out, (h_new, c_new) = layer.cell(x[:, t], [h, c])
        m = mask[:, t:t + 1]
        h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
        prev = torch.where(m, out, prev)
        torch.testing.assert_close(seq[:, t], prev)


def test_masking_layer_values_and_mask():
    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.0, 2.0]], [[3.0, 3.0], [3.0, 3.0], [0.0, 1.0]]])
    layer = Masking(mask_value=3.0)
    assert layer.compute_mask(x).tolist() == [[True, True, True], [False, False, True]]
    assert layer(x)[1, :2].abs().sum() == 0 and torch.equal(layer(x)[0], x[0])


def test_activation_objects_and_initializer_objects_are_accepted():
    from lstmtext.layers.initializers import Orthogonal, RandomUniform
    layer = LSTM(3, activation=torch.tanh, recurrent_activation=torch.sigmoid,
                 kernel_initializer=RandomUniform(-0.1, 0.1, seed=3), recurrent_initializer=Orthogonal(gain=0.5))
    layer(torch.randn(2, 4, 2))
    assert layer.get_config()["activation"] == "tanh"
    assert float(layer.cell.kernel.detach().abs().max()) <= 0.1
    r = layer.cell.recurrent_kernel.detach().double()
    torch.testing.assert_close(r @ r.T, 0.25 * torch.eye(3, dtype=torch.float64), atol=1e-5, rtol=0)


def test_unit_forget_bias_initializes_forget_gate_to_one():
    layer = LSTM(3, bias_initializer="ones")
    layer.build((1, 2, 2))
    np.testing.assert_array_equal(layer.cell.bias.detach().numpy(), np.ones(12))
    layer = LSTM(3)
    layer.build((1, 2, 2))
    np.testing.assert_array_equal(layer.cell.bias.detach().numpy(), [0, 0, 0, 1, 1, 1] + [0] * 6)


def test_numpy_float64_inputs_are_cast_like_keras():
    x = np.random.default_rng(0).random((3, 4, 2))  # float64, as in Keras's own examples
    out = LSTM(3)(x)
    assert out.dtype == torch.float32 and out.shape == (3, 3)
    assert Dense(2)(x).dtype == torch.float32


def test_implementation_survives_the_config():
    layer = deserialize(json.loads(json.dumps(serialize(LSTM(3, dropout=0.2, implementation=1)))))
    assert layer.cell.implementation == 1 and layer.cell.dropout_mask_count == 4
    assert LSTM(3, dropout=0.2).cell.dropout_mask_count == 1
