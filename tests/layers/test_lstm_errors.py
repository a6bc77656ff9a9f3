"""Bad arguments and inputs get a ConfigError naming the argument, the value and what was expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext.errors import ConfigError
from lstmtext.layers import LSTM, Bidirectional, Masking


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"units": 0}, r"units must be a positive integer, got 0"),
    ({"units": 2.5}, r"units must be a positive integer, got 2.5"),
    ({"units": 3, "activation": "tanhh"}, r"unknown activation 'tanhh'; expected one of"),
    ({"units": 3, "recurrent_activation": 3}, r"activation must be a name or a callable, got 3"),
    ({"units": 3, "kernel_initializer": "glorot"}, r"unknown initializer 'glorot'"),
    ({"units": 3, "kernel_regularizer": "l3"}, r"unknown regularizer 'l3'"),
    ({"units": 3, "bias_constraint": "positive"}, r"unknown constraint 'positive'"),
    ({"units": 3, "dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
    ({"units": 3, "recurrent_dropout": -0.1}, r"recurrent_dropout must be a number in \[0, 1\), got -0.1"),
    ({"units": 3, "use_cudnn": "yes"}, r"use_cudnn must be 'auto', True or False, got 'yes'"),
    ({"units": 3, "seed": "x"}, r"seed must be an integer or None, got 'x'"),
    ({"units": 3, "implementation": 3}, r"implementation must be 1 or 2, got 3"),
    ({"units": 3, "activation": "relu", "use_cudnn": True},
     r"use_cudnn=True but the fused path is impossible: activation is relu, not tanh"),
    ({"units": 3, "unroll": True, "use_cudnn": True}, r"use_cudnn=True .* unroll=True"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LSTM(**kwargs)


def test_two_dimensional_input():
    with pytest.raises(ConfigError, match=r"expected a 3-D input \(batch, timesteps, features\), got shape \(4, 10\)"):
        LSTM(3)(torch.zeros(4, 10))


def test_wrong_feature_count_after_build():
    layer = LSTM(3)
    layer(torch.zeros(2, 5, 4))
    with pytest.raises(ConfigError, match=r"expected inputs with 4 features .* got shape \(2, 5, 6\)"):
        layer(torch.zeros(2, 5, 6))


def test_mask_of_wrong_shape():
    with pytest.raises(ConfigError, match=r"mask must have shape \(2, 5\) .* got \(2, 4\)"):
        LSTM(3)(torch.zeros(2, 5, 4), mask=torch.ones(2, 4, dtype=torch.bool))


def test_unroll_with_unknown_length():
    with pytest.raises(ConfigError, match=r"unroll=True needs a known number of timesteps, got shape \(None, None"):
        LSTM(3, unroll=True).build((None, None, 4))


def test_zero_timesteps():
    with pytest.raises(ConfigError, match=r"expected at least one timestep"):
        LSTM(3)(torch.zeros(2, 0, 4))


def test_initial_state_shapes():
    layer = LSTM(3)
    x = torch.zeros(2, 5, 4)
    with pytest.raises(ConfigError, match=r"initial_state must be a list \[h, c\]"):
        layer(x, initial_state=torch.zeros(2, 3))
    with pytest.raises(ConfigError, match=r"initial_state c must have shape \(2, 3\), got \(2, 4\)"):
        layer(x, initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])


def test_stateful_batch_size_change():
    layer = LSTM(3, stateful=True)
    layer(torch.zeros(4, 5, 2))
    with pytest.raises(ConfigError, match=r"stateful LSTM .* built for batch size 4, got a batch of 3"):
        layer(torch.zeros(3, 5, 2))
    with pytest.raises(ConfigError, match=r"reset_states\(\) needs a stateful layer"):
        LSTM(3).reset_states()


def test_use_cudnn_true_without_fused_kernel_says_why(monkeypatch):
    from lstmtext.layers import lstm_ops
    monkeypatch.setattr(lstm_ops, "_KERNELS", None)
    monkeypatch.setattr(lstm_ops, "_KERNELS_ERROR", "the fused kernels cannot be imported (test)")
    with pytest.raises(ConfigError, match=r"use_cudnn=True but the fused path is impossible: the fused kernels"):
        LSTM(3, use_cudnn=True)(torch.zeros(2, 5, 4))


def test_unexpected_call_argument():
    with pytest.raises(ConfigError, match=r"unexpected call arguments \['constants'\]"):
        LSTM(3)(torch.zeros(2, 5, 4), constants=[1])


def test_bidirectional_arguments():
    with pytest.raises(ConfigError, match=r"merge_mode must be one of .* got 'max'"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(ConfigError, match=r"layer must be a recurrent lstmtext layer"):
        Bidirectional(Masking())
    with pytest.raises(ConfigError, match=r"need the same return_sequences"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3, go_backwards=True, return_sequences=True))
    with pytest.raises(ConfigError, match=r"need different go_backwards"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3))


def test_masking_value():
    with pytest.raises(ConfigError, match=r"mask_value must be a number, got 'pad'"):
        Masking("pad")
