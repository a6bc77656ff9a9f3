"""ONNX export of the Functional text layers that fit a Sequential flow (SpatialDropout1D, Activation,
RepeatVector, TimeDistributed over per-step layers). Layers on several inputs (merges, attention) are
written by the graph exporter (test_onnx_functional.py); the one-input lowering refuses them by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext.errors import ExportError
from lstmtext.export import OnnxModel, to_onnx
from lstmtext.export.graph import DEFAULT_OPSET, GraphBuilder
from lstmtext.export.layers import Flow, lower_layer
from lstmtext.layers import (
    LSTM,
    Activation,
    Attention,
    Concatenate,
    Dense,
    Embedding,
    GlobalAveragePooling1D,
    RepeatVector,
    SpatialDropout1D,
    TimeDistributed,
)
from lstmtext.models import Sequential


def _padded_ids(steps=9, seed=0):
    # Rows: no padding, left padding, right padding, one real step.
    x = np.random.default_rng(seed).integers(1, 30, size=(4, steps), dtype=np.int64)
    x[1, :5] = 0
    x[2, 4:] = 0
    x[3, :-1] = 0
    return x


@pytest.mark.parametrize("name", ["masked_stack", "repeat_vector"])
def test_exported_layers_match_pytorch(tmp_path, name):
    torch.manual_seed(0)
    layers = {
        "masked_stack": lambda: [Embedding(30, 5, mask_zero=True), SpatialDropout1D(0.3),
                                 LSTM(4, return_sequences=True), TimeDistributed(Dense(3, "tanh")),
                                 Activation("relu"), GlobalAveragePooling1D(), Dense(1, "sigmoid")],
        "repeat_vector": lambda: [Embedding(30, 5, mask_zero=True), LSTM(4), RepeatVector(3),
                                  LSTM(2, return_sequences=True), TimeDistributed(Activation("softmax"))],
    }[name]()
    model = Sequential(layers)
    model.build((None, None))
    path = to_onnx(model, tmp_path / f"{name}.onnx").path
    for steps, seed in ((9, 0), (2, 1)):
        x = _padded_ids(steps, seed)
        with torch.inference_mode():
            expected = model(torch.from_numpy(x), training=False).numpy()
        np.testing.assert_allclose(OnnxModel(path)(x).numpy(), expected, atol=1e-5, rtol=0)


def test_unexportable_layers_are_named():
    g = GraphBuilder(DEFAULT_OPSET)
    f = Flow("x", None, 3)
    with pytest.raises(ExportError, match=r"layer 'td' \(TimeDistributed\).*inner layer 'gap' "
                                          r"\(GlobalAveragePooling1D\)"):
        lower_layer(g, TimeDistributed(GlobalAveragePooling1D(name="gap"), name="td"), f)
    for layer in (Concatenate(name="cat"), Attention(name="att")):
        with pytest.raises(ExportError, match=rf"layer '{layer.name}' \({type(layer).__name__}\) cannot be "
                                              "exported to ONNX: no ONNX translation"):
            lower_layer(g, layer, f)
