"""The layers of Functional text models (merges, attention, RepeatVector, TimeDistributed, SpatialDropout1D,
Activation, masked global poolings): the layer-test harness on each, their errors, and dropout statistics.

Their numbers against real Keras are in ``test_functional_layers_keras.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from layer_testing import run_layer_test

from lstmtext.errors import ConfigError
from lstmtext.layers import (
    Activation,
    Add,
    AdditiveAttention,
    Attention,
    Average,
    Concatenate,
    Dense,
    Dot,
    Embedding,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Maximum,
    Minimum,
    Multiply,
    RepeatVector,
    SpatialDropout1D,
    Subtract,
    TimeDistributed,
    concatenate,
    dot,
)

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]

B, T, F = 4, 7, 6
# Embedding(mask_zero=True)-style masks: left padded, right padded, full, fully masked.
M1 = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [1] * 7, [0] * 7], dtype=torch.bool)
M2 = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [0] * 7, [0, 1, 1, 1, 1, 1, 1], [1] * 7], dtype=torch.bool)


def _seq(b=B, t=T, f=F, seed=0):
    return torch.randn(b, t, f, generator=torch.Generator().manual_seed(seed))


def _two(f2=F):
    return [_seq(), _seq(f=f2, seed=1)]


CASES = {
    "add": (Add, _two(), (B, T, F), 0, [M1, M2]),
    "add_rank_broadcast": (Add, [_seq(), torch.randn(B, F)], (B, T, F), 0, None),
    "subtract": (Subtract, _two(), (B, T, F), 0, [M1, None]),
    "average": (Average, [_seq(), _seq(seed=1), _seq(seed=2)], (B, T, F), 0, [M1, M2, M1]),
    "multiply": (Multiply, _two(), (B, T, F), 0, [M1, M2]),
    "maximum": (Maximum, _two(), (B, T, F), 0, [M1, M2]),
    "minimum": (Minimum, _two(), (B, T, F), 0, [None, M2]),
    "concatenate_features": (Concatenate, _two(3), (B, T, F + 3), 0, [M1, M2]),
    "concatenate_time": (lambda: Concatenate(axis=1), _two(), (B, 2 * T, F), 0, [M1, None]),
    "dot_time_by_time": (lambda: Dot(axes=(2, 2)), _two(), (B, T, T), 0, [M1, M2]),
    "dot_vectors_normalized": (lambda: Dot(axes=1, normalize=True), [torch.randn(B, F), torch.randn(B, F)],
                               (B, 1), 0, None),
    "attention": (Attention, _two(), (B, T, F), 0, [M1, M2]),
    "attention_scale_concat_dropout": (
        lambda: Attention(use_scale=True, score_mode="concat", dropout=0.3, seed=2), _two(), (B, T, F), 2, [M1, M2]),
    "attention_with_key": (Attention, [_seq(), _seq(f=3, seed=1), _seq(seed=2)], (B, T, 3), 0, None),
    "additive_attention": (AdditiveAttention, _two(), (B, T, F), F, [None, M2]),
    "additive_attention_no_scale": (lambda: AdditiveAttention(use_scale=False), _two(), (B, T, F), 0, None),
    "repeat_vector": (lambda: RepeatVector(3), torch.randn(B, F), (B, 3, F), 0, None),
    "time_distributed_dense": (lambda: TimeDistributed(Dense(3, activation="tanh")), _seq(), (B, T, 3), F * 3 + 3,
                               M1),
    "time_distributed_pooling": (lambda: TimeDistributed(GlobalAveragePooling1D()), torch.randn(B, 3, T, F),
                                 (B, 3, F), 0, M1.unsqueeze(1).expand(B, 3, T).clone()),
    "spatial_dropout": (lambda: SpatialDropout1D(0.5, seed=1), _seq(), (B, T, F), 0, M1),
    "activation": (lambda: Activation("softmax"), _seq(), (B, T, F), 0, M1),
    "global_average_pooling_masked": (GlobalAveragePooling1D, _seq(), (B, F), 0, M1),
    "global_average_pooling_channels_first": (
        lambda: GlobalAveragePooling1D(data_format="channels_first", keepdims=True), _seq().transpose(1, 2),
        (B, F, 1), 0, M1),
    "global_max_pooling": (GlobalMaxPooling1D, _seq(), (B, F), 0, M1),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_layer(case, device):
    make, x, shape, params, mask = CASES[case]
    run_layer_test(make, x, shape, params, mask=mask, device=device)


def test_harness_trains_weights_behind_a_merge():
    """A merge has no weights; gradients flow through it (and through its masks) to the layers before it."""
    d1, d2 = Dense(4), Dense(4)
    x = _seq()
    out = Multiply()([d1(x), d2(x)], mask=[M1, M2])
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in [*d1.parameters(), *d2.parameters()])


def test_masks_follow_keras_rules():
    a, b = _seq(), _seq(seed=1)
    assert torch.equal(Add().compute_mask([a, b], [M1, M2]), M1 | M2)
    assert Add().compute_mask([a, b], [M1, None]) is None
    # Multiply: masked steps count as 1; steps masked in every input give 0.
    out = Multiply()([a, b], mask=[M1, M2])
    torch.testing.assert_close(out[0, 0], b[0, 0])                      # a masked, b real
    assert torch.all(out[3] == b[3] * torch.where(M1[3].unsqueeze(-1), a[3], 1.0))
    assert torch.all(out[1, 4:] == 0)                                   # masked in both
    # Maximum: a masked step of one input takes the other's value.
    assert torch.equal(Maximum()([a, b], mask=[M1, M2])[0, 0], b[0, 0])
    # Concatenate along time joins the masks; along features it ORs them.
    assert torch.equal(Concatenate(axis=1).compute_mask([a, b], [M1, None]), torch.cat([M1, torch.ones_like(M2)], 1))
    assert torch.equal(concatenate([a, b]), torch.cat([a, b], -1))
    assert Dot(axes=2).compute_mask([a, b], [M1, M2]) is None
    # Attention passes the query's mask on, zeroes masked queries, and never attends to masked values.
    att = Attention()
    out, w = att([a, b], mask=[M1, M2], return_attention_scores=True)
    assert torch.equal(att.compute_mask([a, b], [M1, M2]), M1)
    assert torch.all(out[~M1] == 0)
    assert torch.all(w[0][:, ~M2[0]] == 0)
    # A fully masked value row attends uniformly (Keras subtracts 1e9, it does not use -inf).
    torch.testing.assert_close(w[1], torch.full((T, T), 1.0 / T))
    assert att.compute_output_shape([(None, 3, F), (None, T, 2), (None, T, F)], return_attention_scores=True) == [
        (None, 3, 2), (None, 3, T)]
    causal = att([a, a], return_attention_scores=True, use_causal_mask=True)[1]
    assert torch.all(torch.triu(causal, diagonal=1) == 0)


def test_merge_and_attention_errors_name_the_layer():
    a = _seq()
    with pytest.raises(ConfigError, match="add.*list"):
        Add(name="add")(a)
    with pytest.raises(ConfigError, match="incompatible shapes"):
        Add()([a, _seq(f=3)])
    with pytest.raises(ConfigError, match="different batch sizes"):
        Average()([a, _seq(b=2)])
    with pytest.raises(ConfigError, match="except on that axis"):
        Concatenate()([a, _seq(t=3)])
    with pytest.raises(ConfigError, match="Dot axes have different sizes"):
        dot([a, _seq(f=3)], axes=2)
    with pytest.raises(ConfigError, match="batch axis 0"):
        Dot(axes=0)([a, a])
    with pytest.raises(ConfigError, match="axes must be an integer"):
        Dot(axes=(1, 2, 3))
    with pytest.raises(ConfigError, match="exactly 2"):
        Subtract()([a, a, a])
    with pytest.raises(ConfigError, match=r"mask must be a list of 2"):
        Add()([a, a], mask=M1)
    with pytest.raises(ConfigError, match=r"\[query, value\]"):
        Attention()(a)
    with pytest.raises(ConfigError, match="rank 3"):
        Attention()([a, torch.randn(B, F)])
    with pytest.raises(ConfigError, match="same last axis"):
        Attention()([a, _seq(f=3)])
    with pytest.raises(ConfigError, match="does not match"):
        Attention()([a, a], mask=[M1[:, :3], None])
    with pytest.raises(ConfigError, match="score_mode"):
        Attention(score_mode="general")
    with pytest.raises(ConfigError, match="dropout"):
        AdditiveAttention(dropout=1.5)


def test_shape_layers_errors():
    with pytest.raises(ConfigError, match="positive integer"):
        RepeatVector(0)
    with pytest.raises(ConfigError, match="rank 2"):
        RepeatVector(2)(_seq())
    with pytest.raises(ConfigError, match="rank >= 3"):
        TimeDistributed(Dense(2))(torch.randn(B, F))
    with pytest.raises(ConfigError, match=r"\(batch, time\)"):
        TimeDistributed(Dense(2))(_seq(), mask=M1[:, :3])
    with pytest.raises(ConfigError, match="lstmtext layer"):
        TimeDistributed("dense")
    with pytest.raises(ConfigError, match="rank 3"):
        SpatialDropout1D(0.2)(torch.randn(B, F), training=True)
    with pytest.raises(ConfigError, match="does not match"):
        GlobalAveragePooling1D()(_seq(), mask=M1[:, :3])
    with pytest.raises(ConfigError, match="unknown activation"):
        Activation("nope")


def test_layers_take_lists_of_numpy_arrays_and_int_masks():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))       # float64, as NumPy makes them
    out = Add()([a, b])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor(a + b, dtype=torch.float32))
    m = np.array([[1, 1, 0], [0, 0, 0]])                                  # 0/1 ints, cast to bool as Keras does
    pooled = GlobalAveragePooling1D()(a, mask=m)
    torch.testing.assert_close(pooled[0], torch.tensor(a[0, :2].mean(0), dtype=torch.float32))
    assert torch.isnan(pooled[1]).all()                                   # all padded: 0/0, as in Keras
    # A nested list of Python numbers is still one input (token ids), not a list of inputs.
    assert Embedding(10, 2)([[1, 2], [3, 4]]).shape == (2, 2, 2)


def test_time_distributed_equals_the_inner_layer_on_each_step():
    inner = Dense(3)
    td = TimeDistributed(inner)
    x = _seq()
    y = td(x, mask=M1)
    for t in range(T):
        torch.testing.assert_close(y[:, t], inner(x[:, t]))
    assert td.weights == inner.weights and torch.equal(td.compute_mask(x, M1), M1)


def test_spatial_dropout_drops_whole_channels():
    layer = SpatialDropout1D(0.3, seed=0)
    x = torch.ones(64, 5, 64)
    y = layer(x, training=True)
    kept = y[:, 0, :] != 0                                                # (B, C)
    # One decision per (sample, channel), shared by every step; kept values scaled by 1 / (1 - rate).
    assert torch.equal(y != 0, kept.unsqueeze(1).expand_as(y))
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.03               # 4,096 draws: std 0.007
    assert torch.equal(layer(x, training=False), x)
    assert torch.equal(layer.compute_mask(x, M1), M1)
    assert torch.equal(SpatialDropout1D(0.3, seed=0)(x, training=True), y)  # seeded
    assert "noise_shape" not in layer.get_config() and "trainable" not in layer.get_config()


def test_attention_dropout_drops_weights_in_training_only():
    q, v = _seq(b=32, t=8, f=4), _seq(b=32, t=8, f=4, seed=1)
    layer = Attention(dropout=0.4, seed=3)
    clean = layer([q, v], return_attention_scores=True, training=False)[1]
    out, w = layer([q, v], return_attention_scores=True, training=True)
    dropped = w == 0
    assert abs(dropped.float().mean().item() - 0.4) < 0.03                # 2,048 draws: std 0.011
    torch.testing.assert_close(w[~dropped], clean[~dropped] / 0.6)
    torch.testing.assert_close(out, torch.matmul(w, v))


def test_additive_attention_scale_is_keras_glorot_uniform():
    layer = AdditiveAttention()
    layer([_seq(f=50), _seq(f=50)])
    limit = (6 / (50 + 50)) ** 0.5                                        # Keras's fans for a 1-D shape: (n, n)
    assert layer.scale.shape == (50,) and float(layer.scale.detach().abs().max()) <= limit
    assert [n for n, _, _ in layer._weight_specs] == ["scale"]
    assert "score_mode" not in layer.get_config()


@pytest.mark.parametrize(("make", "input_shape", "expected"), [
    (Add, [(None, None, 8), (None, None, 8)], (None, None, 8)),
    (Multiply, [(None, 5, 8), (None, 8)], (None, 5, 8)),
    (lambda: Concatenate(axis=1), [(None, None, 8), (None, 3, 8)], (None, None, 8)),
    (Concatenate, [(None, None, 8), (None, None, 2)], (None, None, 10)),
    (lambda: Dot(axes=(2, 2)), [(None, 4, 8), (None, None, 8)], (None, 4, None)),
    (lambda: Dot(axes=1), [(None, 8), (None, 8)], (None, 1)),
    (Attention, [(None, None, 8), (None, None, 8)], (None, None, 8)),
    (AdditiveAttention, [(None, 4, 8), (None, None, 3), (None, None, 8)], (None, 4, 3)),
    (lambda: RepeatVector(3), (None, 8), (None, 3, 8)),
    (lambda: TimeDistributed(Dense(2)), (None, None, 8), (None, None, 2)),
    (lambda: TimeDistributed(GlobalAveragePooling1D()), (None, 3, None, 8), (None, 3, 8)),
    (lambda: SpatialDropout1D(0.1), (None, None, 8), (None, None, 8)),
    (lambda: Activation("relu"), (None, None, 8), (None, None, 8)),
])
def test_build_and_output_shape_with_unknown_dimensions(make, input_shape, expected):
    """What the Functional graph asks before any data: build and output shape from shapes with None."""
    layer = make()
    layer.build(input_shape)
    assert layer.compute_output_shape(input_shape) == expected
