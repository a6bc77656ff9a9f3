"""Golden values recorded from Keras's own ``keras/src/layers/rnn/lstm_test.py`` (Keras 3), atol 1e-5."""

import numpy as np
import pytest
import torch
from layer_testing import path_kwargs

from lstmtext.layers import LSTM
from lstmtext.layers.initializers import Constant

PATHS = ["loop", "fused"]


def _lstm(units, path, **kw):
    return LSTM(units, kernel_initializer=Constant(0.01), recurrent_initializer=Constant(0.02),
                bias_initializer=Constant(0.03), **path_kwargs(path), **kw)


def _rows(*values, width):
    return np.array([[v] * width for v in values], dtype=np.float32)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("kw", "expected"), [
    ({}, (0.6288687, 0.86899155, 0.9460773)),
    ({"go_backwards": True}, (0.35622165, 0.74789524, 0.8872726)),
    ({"unit_forget_bias": False}, (0.57019705, 0.8661914, 0.9459622)),
    ({"use_bias": False}, (0.54986924, 0.86226785, 0.9443936)),
])
def test_correctness(path, kw, expected):
    seq = np.arange(72).reshape((3, 6, 4)).astype("float32")
    out = _lstm(3, path, **kw)(seq)
    np.testing.assert_allclose(out.detach().numpy(), _rows(*expected, width=3), atol=1e-5)


def test_unroll_equals_default():
    seq = np.arange(72).reshape((3, 6, 4)).astype("float32")
    out = _lstm(3, "loop", unroll=True)(seq)
    np.testing.assert_allclose(out.detach().numpy(), _rows(0.6288687, 0.86899155, 0.9460773, width=3), atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_statefulness(path):
    seq = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = _lstm(4, path, stateful=True)
    expected = _rows(0.3124785, 0.6863672, width=4)
    first = layer(seq)
    out = layer(seq)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    assert not np.allclose(first.detach().numpy(), expected, atol=1e-3)  # the state did carry over
    layer.reset_states()
    layer(seq)
    np.testing.assert_allclose(layer(seq).detach().numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_initial_state(path):
    seq = np.arange(24).reshape((2, 4, 3)).astype("float32")
    state = [np.arange(4).reshape((2, 2)).astype("float32")] * 2
    out = _lstm(2, path)(seq, initial_state=state)
    np.testing.assert_allclose(out.detach().numpy(), [[0.20574439, 0.3558822], [0.64930826, 0.66276]], atol=1e-5)
    out = _lstm(2, path, go_backwards=True)(seq, initial_state=state)
    np.testing.assert_allclose(out.detach().numpy(), [[0.13281618, 0.2790356], [0.5839337, 0.5992567]], atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_masking(path):
    seq = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = _lstm(2, path)(seq, mask=mask)
    np.testing.assert_allclose(out.detach().numpy(), _rows(0.11755939, 0.28556206, width=2), atol=1e-5)
    seqs = _lstm(2, path, return_sequences=True)(seq, mask=mask).detach().numpy()
    np.testing.assert_allclose(seqs[0], _rows(0.01588910, 0.05552048, 0.11755939, 0.11755939, width=2), atol=1e-5)
    np.testing.assert_allclose(seqs[1], _rows(0.14185596, 0.28556206, 0.28556206, 0.28556206, width=2), atol=1e-5)
    zeros = _lstm(2, path, return_sequences=True, zero_output_for_mask=True)(seq, mask=mask).detach().numpy()
    np.testing.assert_allclose(zeros[0], _rows(0.01588910, 0.05552048, 0.11755939, 0.0, width=2), atol=1e-5)
    np.testing.assert_allclose(zeros[1], _rows(0.14185596, 0.28556206, 0.0, 0.0, width=2), atol=1e-5)
    backwards_mask = torch.tensor([[False, True, True, True], [False, False, True, True]])
    out = _lstm(2, path, go_backwards=True)(seq, mask=backwards_mask)
    np.testing.assert_allclose(out.detach().numpy(), _rows(0.15341201, 0.3844719, width=2), atol=1e-5)
