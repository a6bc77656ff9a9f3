"""Parity with real Keras (torch backend): random weights copied across, outputs and states within 1e-5.

Each test builds the Keras layer once per configuration and checks every ``return_sequences`` x
``return_state`` combination of ours against it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from layer_testing import path_kwargs

from lstmtext.errors import ConfigError
from lstmtext.layers import LSTM, Bidirectional, activations

pytestmark = pytest.mark.keras

B, T, F, U = 4, 6, 3, 5
ATOL = 1e-5

MASKS = {
    "none": None,
    "left_padded": np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1], [0, 1, 1, 1, 1, 1]], bool),
    "right_padded": np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]], bool),
    "fully_masked_row": np.array([[0, 0, 1, 1, 1, 1],
                                  [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool),
    "gaps": np.array([[1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1], [1, 1, 0, 1, 1, 1], [0, 0, 1, 0, 0, 0]], bool),
}


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, T, F)).astype("float32"), rng.normal(size=(B, T, F)).astype("float32")


def _random_weights(keras_layer, seed: int = 1):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in keras_layer.get_weights()]
    keras_layer.set_weights(ws)
    return ws


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _assert_same(ours, theirs, what):
    ours = ours if isinstance(ours, (list, tuple)) else [ours]
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    assert len(ours) == len(theirs), what
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(_np(a), _np(b), atol=ATOL, err_msg=f"{what}: output {i}")


# The fused path is for tanh/sigmoid only.
PATH_ACTS = [("loop", ("tanh", "sigmoid")), ("loop", ("relu", "hard_sigmoid")), ("fused", ("tanh", "sigmoid"))]


@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(("path", "acts"), PATH_ACTS, ids=lambda v: v if isinstance(v, str) else "-".join(v))
@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstm_matches_keras(keras, path, go_backwards, mask_kind, acts, use_bias, stateful):
    kw = dict(activation=acts[0], recurrent_activation=acts[1], use_bias=use_bias, go_backwards=go_backwards,
              stateful=stateful)
    x1, x2 = _data()
    mask = MASKS[mask_kind]
    for return_sequences, return_state in itertools.product([False, True], [False, True]):
        flags = dict(return_sequences=return_sequences, return_state=return_state)
        theirs = keras.layers.LSTM(U, **kw, **flags)
        theirs.build((B, T, F))
        weights = _random_weights(theirs)
        ours = LSTM(U, **kw, **flags, **path_kwargs(path))
        ours.build((B, T, F))
        ours.set_weights(weights)
        for step, x in enumerate((x1, x2) if stateful else (x1,)):
            what = f"{flags} call {step}"
            _assert_same(ours(x, mask=mask), theirs(x, mask=mask), what)
        if mask is not None:
            km = theirs.compute_mask(x1, torch.as_tensor(mask))
            om = ours.compute_mask(torch.as_tensor(x1), torch.as_tensor(mask))
            km, om = (km if isinstance(km, list) else [km]), (om if isinstance(om, list) else [om])
            assert [m is None for m in km] == [m is None for m in om]
            for a, b in zip(om, km):
                if a is not None:
                    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


@pytest.mark.parametrize("path", ["loop", "fused"])
@pytest.mark.parametrize("mask_kind", ["none", "left_padded", "fully_masked_row"])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_initial_state_and_zero_output_match_keras(keras, path, mask_kind, zero_output_for_mask):
    x, _ = _data(3)
    rng = np.random.default_rng(4)
    state = [rng.normal(size=(B, U)).astype("float32") for _ in range(2)]
    for go_backwards, return_sequences in itertools.product([False, True], [False, True]):
        kw = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards,
                  zero_output_for_mask=zero_output_for_mask)
        theirs = keras.layers.LSTM(U, **kw)
        theirs.build((B, T, F))
        weights = _random_weights(theirs, seed=5)
        ours = LSTM(U, **kw, **path_kwargs(path))
        ours.build((B, T, F))
        ours.set_weights(weights)
        _assert_same(ours(x, mask=MASKS[mask_kind], initial_state=state),
                     theirs(x, mask=MASKS[mask_kind], initial_state=state), str(kw))


@pytest.mark.parametrize("acts", [("softsign", "linear"), ("elu", "sigmoid"), ("selu", "softplus"),
                                  ("gelu", "silu"), ("softmax", "hard_sigmoid"), (None, "relu6")], ids=str)
def test_other_activations_match_keras(keras, acts):
    x, _ = _data(6)
    kw = dict(activation=acts[0], recurrent_activation=acts[1], return_sequences=True)
    theirs = keras.layers.LSTM(U, **kw)
    theirs.build((B, T, F))
    weights = _random_weights(theirs, seed=7)
    ours = LSTM(U, **kw)
    ours.build((B, T, F))
    ours.set_weights(weights)
    _assert_same(ours(x, mask=MASKS["gaps"]), theirs(x, mask=MASKS["gaps"]), str(acts))


def test_every_activation_name_matches_keras(keras):
    x = torch.linspace(-6, 6, 100).reshape(1, 100)
    for name in sorted(activations._ACTIVATIONS):
        ours = activations.get(name)(x)
        theirs = keras.activations.get(name)(x)
        np.testing.assert_allclose(_np(ours), _np(theirs), atol=1e-6, err_msg=name)
        assert activations.serialize(activations.get(name)) == keras.activations.serialize(
            keras.activations.get(name))


def test_time_major_is_the_transposed_layer():
    x, _ = _data(8)
    mask = MASKS["left_padded"]
    for return_sequences in (False, True):
        a = LSTM(U, return_sequences=return_sequences, return_state=True)
        b = LSTM(U, return_sequences=return_sequences, return_state=True, time_major=True)
        a.build((B, T, F))
        b.build((T, B, F))
        b.set_weights(a.get_weights())
        out_a = a(x, mask=mask)
        out_b = b(np.swapaxes(x, 0, 1), mask=mask.T)
        if return_sequences:
            out_b = [out_b[0].transpose(0, 1), *out_b[1:]]
        _assert_same(out_b, out_a, f"return_sequences={return_sequences}")


@pytest.mark.parametrize("path", ["loop", "fused"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("mask_kind", ["none", "left_padded", "right_padded", "fully_masked_row"])
def test_bidirectional_matches_keras(keras, path, merge_mode, mask_kind):
    x, _ = _data(9)
    mask = MASKS[mask_kind]
    for return_sequences, return_state in itertools.product([False, True], [False, True]):
        kw = dict(return_sequences=return_sequences, return_state=return_state)
        theirs = keras.layers.Bidirectional(keras.layers.LSTM(U, **kw), merge_mode=merge_mode)
        theirs.build((B, T, F))
        weights = _random_weights(theirs, seed=10)
        ours = Bidirectional(LSTM(U, **kw, **path_kwargs(path)), merge_mode=merge_mode)
        ours.build((B, T, F))
        ours.set_weights(weights)
        _assert_same(ours(x, mask=mask), theirs(x, mask=mask), f"{merge_mode} {kw}")
        assert ours.count_params() == theirs.count_params()


@pytest.mark.parametrize("mask_kind", ["none", "left_padded", "gaps"])
def test_unroll_matches_keras(keras, mask_kind):
    """Keras's unrolled loop (its torch backend fails with a mask and go_backwards, so only forwards here)."""
    x, _ = _data(11)
    for return_sequences in (False, True):
        theirs = keras.layers.LSTM(U, unroll=True, return_sequences=return_sequences)
        theirs.build((B, T, F))
        weights = _random_weights(theirs, seed=12)
        ours = LSTM(U, unroll=True, return_sequences=return_sequences)
        ours.build((B, T, F))
        ours.set_weights(weights)
        _assert_same(ours(x, mask=MASKS[mask_kind]), theirs(x, mask=MASKS[mask_kind]), f"{return_sequences}")


def test_bidirectional_time_major_is_the_transposed_layer():
    x, _ = _data(13)
    mask = MASKS["left_padded"]
    a = Bidirectional(LSTM(U, return_sequences=True, return_state=True))
    b = Bidirectional(LSTM(U, return_sequences=True, return_state=True, time_major=True))
    a.build((B, T, F))
    b.build((T, B, F))
    b.set_weights(a.get_weights())
    out_a = a(x, mask=mask)
    out_b = b(np.swapaxes(x, 0, 1), mask=mask.T)
    _assert_same([out_b[0].transpose(0, 1), *out_b[1:]], out_a, "time_major")


@pytest.mark.parametrize("path", ["loop", "fused"])
def test_float64_layer(path):
    x = torch.from_numpy(_data(14)[0]).double()
    a = LSTM(U, dtype="float64", return_sequences=True, **path_kwargs(path))
    b = LSTM(U, dtype="float64", return_sequences=True, use_cudnn=False)
    a.build((B, T, F))
    b.build((B, T, F))
    b.set_weights(a.get_weights())
    mask = torch.as_tensor(MASKS["fully_masked_row"])
    if path == "fused":
        # No fused kernel takes float64: the kernels decline and use_cudnn=True says so, as Keras does.
        with pytest.raises(ConfigError, match="float32"):
            a(x, mask=mask)
        return
    out = a(x, mask=mask)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, b(x, mask=mask), atol=1e-12, rtol=0)


@pytest.mark.parametrize("merge_mode", ["concat", None])
def test_bidirectional_initial_state_and_mask_match_keras(keras, merge_mode):
    x, _ = _data(15)
    mask = MASKS["left_padded"]
    rng = np.random.default_rng(16)
    states = [rng.normal(size=(B, U)).astype("float32") for _ in range(4)]
    for return_sequences in (False, True):
        kw = dict(return_sequences=return_sequences, return_state=True)
        theirs = keras.layers.Bidirectional(keras.layers.LSTM(U, **kw), merge_mode=merge_mode)
        theirs.build((B, T, F))
        weights = _random_weights(theirs, seed=17)
        ours = Bidirectional(LSTM(U, **kw), merge_mode=merge_mode)
        ours.build((B, T, F))
        ours.set_weights(weights)
        _assert_same(ours(x, mask=mask, initial_state=states), theirs(x, mask=mask, initial_state=states), str(kw))
        plain_kw = dict(return_sequences=return_sequences)
        theirs = keras.layers.Bidirectional(keras.layers.LSTM(U, **plain_kw), merge_mode=merge_mode)
        ours = Bidirectional(LSTM(U, **plain_kw), merge_mode=merge_mode)
        km = theirs.compute_mask(x, torch.as_tensor(mask))
        om = ours.compute_mask(torch.as_tensor(x), torch.as_tensor(mask))
        km, om = (list(km) if isinstance(km, (list, tuple)) else [km]), (om if isinstance(om, list) else [om])
        assert [m is None for m in om] == [m is None for m in km]
        assert all(a is None or torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(om, km))
