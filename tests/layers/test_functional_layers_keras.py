"""Parity with real Keras (torch backend) for the layers of Functional text models: outputs, output masks,
and gradients (inputs and weights) within 1e-5, Keras's random weights copied across.

Masks are attached to Keras's inputs the way its Functional graph does (``_keras_mask`` on the tensor,
as ``Embedding(mask_zero=True)`` leaves them), so Keras's own mask plumbing decides what each layer sees.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext import layers as L

pytestmark = pytest.mark.keras

ATOL = 1e-5
B, T, F = 4, 6, 5
# From token ids with 0 as padding: left padded, right padded, a fully masked row, no padding.
IDS_A = np.array([[0, 0, 3, 5, 2, 9], [4, 4, 1, 7, 0, 0], [0, 0, 0, 0, 0, 0], [8, 1, 2, 3, 4, 5]])
IDS_B = np.array([[6, 2, 7, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 3, 3, 1, 2, 8], [5, 5, 5, 5, 5, 1]])
MASK_A, MASK_B = IDS_A != 0, IDS_B != 0


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _flat(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _close(ours, theirs, what):
    np.testing.assert_allclose(_np(ours), _np(theirs), atol=ATOL, rtol=0, err_msg=what)


def _compare(keras, make_keras, make_ours, xs, masks, call_kw=None, seed=0):
    """Run both layers on the same inputs (a list for multi-input layers) and masks; compare everything.

    Random weights (Keras's shapes) are set in both; the loss ``sum(out * R)`` with a fixed random ``R``
    gives the gradients compared for every input and every weight.
    """
    from keras.src.backend import get_keras_mask, set_keras_mask

    call_kw = call_kw or {}
    multi = isinstance(xs, list)
    xs_l, masks_l = (xs, masks) if multi else ([xs], [masks])
    assert len(xs_l) == len(masks_l)
    rng = np.random.default_rng(seed)
    theirs, ours = make_keras(), make_ours()

    def inputs(keras_side):
        out = []
        for x, m in zip(xs_l, masks_l):
            t = torch.tensor(x, requires_grad=True)
            if keras_side and m is not None:
                set_keras_mask(t, torch.tensor(m))
            out.append(t)
        return out

    def ours_mask():
        ms = [None if m is None else torch.tensor(m) for m in masks_l]
        if all(m is None for m in ms):
            return None
        return ms if multi else ms[0]

    # Build both, then give both the same random weights.
    theirs([torch.tensor(x) for x in xs_l] if multi else torch.tensor(xs_l[0]))
    ours([torch.tensor(x) for x in xs_l] if multi else torch.tensor(xs_l[0]))
    weights = [rng.normal(scale=0.7, size=w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert ours.count_params() == theirs.count_params()

    kx, ox = inputs(True), inputs(False)
    k_out = theirs(kx if multi else kx[0], **call_kw)
    o_out = ours(ox if multi else ox[0], mask=ours_mask(), **call_kw)
    k_flat, o_flat = _flat(k_out), _flat(o_out)
    assert len(k_flat) == len(o_flat)
    for i, (a, b) in enumerate(zip(o_flat, k_flat)):
        _close(a, b, f"output {i}")
    k_mask = get_keras_mask(k_flat[0])
    o_mask = ours.compute_mask(ox if multi else ox[0], ours_mask())
    assert (k_mask is None) == (o_mask is None), (k_mask, o_mask)
    if k_mask is not None:
        np.testing.assert_array_equal(_np(o_mask), _np(k_mask))
    assert tuple(o_flat[0].shape) == tuple(ours.compute_output_shape(
        [tuple(x.shape) for x in ox] if multi else tuple(ox[0].shape)))

    # Gradients of one loss: every input, every weight.
    rs = [torch.tensor(rng.normal(size=tuple(o.shape)).astype("float32")) for o in o_flat]
    sum(torch.nansum(k * r) for k, r in zip(k_flat, rs)).backward()
    sum(torch.nansum(o * r) for o, r in zip(o_flat, rs)).backward()
    k_vars = [v.value for v in theirs.trainable_weights]
    assert len(k_vars) == len(ours.weights)
    for what, pairs in (("input", zip(ox, kx)), ("weight", zip(ours.weights, k_vars))):
        for i, (a, b) in enumerate(pairs):
            assert a.grad is not None and b.grad is not None, f"no gradient of {what} {i}"
            _close(a.grad, b.grad, f"gradient of {what} {i}")
    return o_out


def _x(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape or (B, T, F)).astype("float32")


MERGES = ["Add", "Subtract", "Average", "Multiply", "Maximum", "Minimum"]
MASK_SETS = {"both": (MASK_A, MASK_B), "first_only": (MASK_A, None), "second_only": (None, MASK_B),
             "none": (None, None)}


@pytest.mark.parametrize("masks", list(MASK_SETS))
@pytest.mark.parametrize("name", MERGES)
def test_elementwise_merges_match_keras(keras, name, masks):
    _compare(keras, getattr(keras.layers, name), getattr(L, name), [_x(0), _x(1)], list(MASK_SETS[masks]))


@pytest.mark.parametrize("name", ["Add", "Multiply", "Average"])
def test_merges_of_three_and_of_mixed_ranks_match_keras(keras, name):
    _compare(keras, getattr(keras.layers, name), getattr(L, name), [_x(0), _x(1), _x(2)], [MASK_A, MASK_B, MASK_A])
    _compare(keras, getattr(keras.layers, name), getattr(L, name), [_x(0), _x(1, B, F)], [MASK_A, None])


@pytest.mark.parametrize("masks", list(MASK_SETS))
@pytest.mark.parametrize("axis", [-1, 1])
def test_concatenate_matches_keras(keras, axis, masks):
    second = _x(1, B, T, 3) if axis == -1 else _x(1, B, 4, F)
    m2 = MASK_SETS[masks][1]
    m2 = m2 if m2 is None or axis == -1 else m2[:, :4]
    _compare(keras, lambda: keras.layers.Concatenate(axis=axis), lambda: L.Concatenate(axis=axis),
             [_x(0), second], [MASK_SETS[masks][0], m2])


@pytest.mark.parametrize(("axes", "normalize", "shapes"), [
    ((2, 2), False, [(B, T, F), (B, 4, F)]),
    (2, True, [(B, T, F), (B, T, F)]),
    ((1, 1), False, [(B, T, F), (B, T, 3)]),
    (-1, True, [(B, F), (B, F)]),
    ((1, 2), False, [(B, F), (B, 4, F)]),
])
def test_dot_matches_keras(keras, axes, normalize, shapes):
    xs = [_x(i, *s) for i, s in enumerate(shapes)]
    masks = [MASK_A if len(shapes[0]) == 3 else None, None]
    _compare(keras, lambda: keras.layers.Dot(axes=axes, normalize=normalize),
             lambda: L.Dot(axes=axes, normalize=normalize), xs, masks)


ATTENTION_OPTIONS = {
    "dot": {},
    "dot_scaled": {"use_scale": True},
    "concat": {"score_mode": "concat"},
    "concat_scaled": {"score_mode": "concat", "use_scale": True},
    "dot_dropout_inference": {"dropout": 0.5},
}


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masks", list(MASK_SETS))
@pytest.mark.parametrize("options", list(ATTENTION_OPTIONS))
def test_attention_matches_keras(keras, options, masks, causal):
    kw = ATTENTION_OPTIONS[options]
    # training=False explicitly: a torch module starts in training mode, a Keras call outside fit does not.
    call_kw = {"return_attention_scores": True, "use_causal_mask": causal, "training": False}
    _compare(keras, lambda: keras.layers.Attention(**kw), lambda: L.Attention(**kw), [_x(0), _x(1)],
             list(MASK_SETS[masks]), call_kw)


@pytest.mark.parametrize("use_scale", [True, False])
@pytest.mark.parametrize("masks", ["both", "second_only"])
def test_additive_attention_matches_keras(keras, use_scale, masks):
    _compare(keras, lambda: keras.layers.AdditiveAttention(use_scale=use_scale),
             lambda: L.AdditiveAttention(use_scale=use_scale), [_x(0), _x(1)], list(MASK_SETS[masks]),
             {"return_attention_scores": True})


@pytest.mark.parametrize("cls", ["Attention", "AdditiveAttention"])
def test_attention_with_key_and_training_without_dropout_matches_keras(keras, cls):
    xs = [_x(0, B, 4, F), _x(1, B, T, 3), _x(2)]
    _compare(keras, getattr(keras.layers, cls), getattr(L, cls), xs, [MASK_A[:, :4], MASK_B, None],
             {"training": True, "use_causal_mask": True})


def test_attention_over_lstm_outputs_with_embedding_masks_matches_keras(keras):
    """The Luong pattern of text models: LSTM outputs attend to themselves, masks from the embedding."""
    emb_k, emb_o = keras.layers.Embedding(10, F, mask_zero=True), L.Embedding(10, F, mask_zero=True)
    emb_k.build((B, T))
    emb_o.build((B, T))
    emb_o.set_weights(emb_k.get_weights())
    ids = torch.tensor(IDS_A)
    seq_k, seq_o = emb_k(ids), emb_o(ids)
    m_o = emb_o.compute_mask(ids)
    from keras.src.backend import get_keras_mask

    np.testing.assert_array_equal(_np(get_keras_mask(seq_k)), _np(m_o))
    out_k = keras.layers.Attention(use_scale=True)([seq_k, seq_k])
    att = L.Attention(use_scale=True)
    out_o = att([seq_o, seq_o], mask=[m_o, m_o])
    _close(out_o, out_k, "attention over embeddings")
    np.testing.assert_array_equal(_np(att.compute_mask([seq_o, seq_o], [m_o, m_o])), _np(get_keras_mask(out_k)))


def test_repeat_vector_matches_keras(keras):
    _compare(keras, lambda: keras.layers.RepeatVector(3), lambda: L.RepeatVector(3), _x(0, B, F), None)


@pytest.mark.parametrize("activation", ["relu", "softmax", "tanh", "gelu", "hard_sigmoid", "elu"])
def test_activation_matches_keras(keras, activation):
    _compare(keras, lambda: keras.layers.Activation(activation), lambda: L.Activation(activation), _x(0), MASK_A)


@pytest.mark.parametrize("training", [False, True])
def test_spatial_dropout_matches_keras_without_dropping(keras, training):
    # Inference (any rate) and training with rate 0 are the identity in both; the mask passes through.
    rate = 0.0 if training else 0.4
    _compare(keras, lambda: keras.layers.SpatialDropout1D(rate), lambda: L.SpatialDropout1D(rate), _x(0), MASK_A,
             {"training": training})


@pytest.mark.parametrize("masked", [True, False])
def test_time_distributed_dense_matches_keras(keras, masked):
    _compare(keras, lambda: keras.layers.TimeDistributed(keras.layers.Dense(3, activation="tanh")),
             lambda: L.TimeDistributed(L.Dense(3, activation="tanh")), _x(0), MASK_A if masked else None)


def test_time_distributed_masked_pooling_matches_keras(keras):
    """Sentences x words: a (B, sentences, words) id array, each sentence averaged over its real words."""
    ids = np.stack([IDS_A, IDS_B, np.roll(IDS_A, 1, axis=0)], axis=1)      # (B, 3, T)
    _compare(keras, lambda: keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling1D()),
             lambda: L.TimeDistributed(L.GlobalAveragePooling1D()), _x(0, B, 3, T, F), ids != 0)


@pytest.mark.parametrize(("data_format", "keepdims"), [("channels_last", False), ("channels_last", True),
                                                       ("channels_first", False)])
@pytest.mark.parametrize("name", ["GlobalAveragePooling1D", "GlobalMaxPooling1D"])
def test_global_pooling_with_masks_matches_keras(keras, name, data_format, keepdims):
    x = _x(0) if data_format == "channels_last" else _x(0, B, F, T)
    kw = {"data_format": data_format, "keepdims": keepdims}
    _compare(keras, lambda: getattr(keras.layers, name)(**kw), lambda: getattr(L, name)(**kw), x, MASK_A)


@pytest.mark.parametrize(("name", "kwargs"), [
    ("Add", {}), ("Subtract", {}), ("Average", {}), ("Multiply", {}), ("Maximum", {}), ("Minimum", {}),
    ("Concatenate", {"axis": 1}), ("Dot", {"axes": [1, 2], "normalize": True}),
    ("Attention", {"use_scale": True, "score_mode": "concat", "dropout": 0.1, "seed": 3}),
    ("AdditiveAttention", {"use_scale": False, "dropout": 0.2}), ("RepeatVector", {"n": 4}),
    ("Activation", {"activation": "softmax"}), ("SpatialDropout1D", {"rate": 0.3, "seed": 1}),
    ("GlobalAveragePooling1D", {"data_format": "channels_first", "keepdims": True}),
    ("GlobalMaxPooling1D", {"keepdims": True}),
])
def test_configs_use_keras_argument_names(keras, name, kwargs):
    """Keras's ``get_config()`` (bar its dtype policy) builds our layer, with the same values back."""
    theirs = getattr(keras.layers, name)(**kwargs).get_config()
    theirs = {k: v for k, v in theirs.items() if k not in ("dtype", "name", "trainable")}
    ours = getattr(L, name).from_config(dict(theirs)).get_config()
    assert {k: ours[k] for k in theirs} == theirs
    assert set(ours) - set(theirs) <= {"name", "trainable", "dtype", "batch_input_shape"}


def test_time_distributed_lstm_over_sentences_matches_keras(keras):
    """A word-level LSTM run on each sentence of a (B, sentences, words) input, with the words' mask."""
    ids = np.stack([IDS_A, IDS_B], axis=1)                                  # (B, 2, T)
    _compare(keras, lambda: keras.layers.TimeDistributed(keras.layers.LSTM(3)),
             lambda: L.TimeDistributed(L.LSTM(3)), _x(0, B, 2, T, F), ids != 0)


def test_masked_attention_pipeline_matches_keras_with_gradients(keras):
    """Embedding(mask_zero) -> LSTM sequences -> self-attention -> Concatenate -> masked average -> Dense,
    composed eagerly in both (Keras carries the masks on its tensors, we pass them): outputs and the
    gradient of every weight within 1e-5."""
    def build(lib):
        return [lib.Embedding(10, F, mask_zero=True), lib.LSTM(4, return_sequences=True),
                lib.Attention(use_scale=True), lib.Concatenate(), lib.GlobalAveragePooling1D(),
                lib.Dense(1, activation="sigmoid")]

    ids = np.concatenate([IDS_A, IDS_B[:1]])                                # row 2 is fully padded
    theirs, ours = build(keras.layers), build(L)
    rng = np.random.default_rng(3)

    def run_keras():
        e = theirs[0](torch.tensor(ids))
        s = theirs[1](e)
        c = theirs[2]([s, s])
        return theirs[5](theirs[4](theirs[3]([s, c])))

    def run_ours():
        x = torch.tensor(ids)
        m = ours[0].compute_mask(x)
        s = ours[1](ours[0](x), mask=m)
        c = ours[2]([s, s], mask=[m, m], training=False)
        cat = ours[3]([s, c], mask=[m, m])
        return ours[5](ours[4](cat, mask=ours[3].compute_mask([s, c], [m, m])))

    run_keras()
    run_ours()
    for k, o in zip(theirs, ours):
        ws = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in k.get_weights()]
        k.set_weights(ws)
        o.set_weights(ws)
    out_k, out_o = run_keras(), run_ours()
    _close(out_o, out_k, "pipeline output")
    assert torch.isnan(out_o[2]).all() and torch.isnan(out_k[2]).all()    # an average over no step, as Keras
    real = [0, 1, 3, 4]
    out_k[real].sum().backward()
    out_o[real].sum().backward()
    for k, o in zip(theirs, ours):
        for i, (a, b) in enumerate(zip(o.weights, [v.value for v in k.trainable_weights])):
            _close(a.grad, b.grad, f"{o.name} weight {i} gradient")
