"""ONNX export: onnxruntime gives PyTorch's outputs (atol 1e-5) on padded inputs, with the native LSTM op."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from lstmtext.errors import ConfigError, ExportError
from lstmtext.export import OnnxModel, build_onnx, keras_to_onnx_lstm_weights, to_onnx
from lstmtext.layers import (
    LSTM,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Masking,
)
from lstmtext.models import Sequential

ATOL = 1e-5


def _ids(rng: np.random.Generator, batch: int, steps: int, vocab: int) -> np.ndarray:
    return rng.integers(1, vocab, size=(batch, steps), dtype=np.int64)


def padded_ids(vocab: int, steps: int = 12, seed: int = 0) -> np.ndarray:
    """Rows: no padding, left padding (pad_sequences' default), right padding, fully padded, one step."""
    rng = np.random.default_rng(seed)
    x = _ids(rng, 5, steps, vocab)
    x[1, :7] = 0
    x[2, 5:] = 0
    x[3] = 0
    x[4, :-1] = 0
    return x


def run_both(model, path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        expected = model(torch.from_numpy(x), training=False).numpy()
    got = OnnxModel(path)(x).numpy()
    return expected, got


def lstm_ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _built(layers, shape=(None, None)) -> Sequential:
    model = Sequential(layers)
    model.build(shape)
    return model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- acceptance: the tutorial model and the masked Bidirectional stack -------------------------------------
def test_tutorial_model_matches_pytorch(tmp_path):
    model = _built([Embedding(5000, 15), LSTM(10), Dense(1, activation="sigmoid")], (None, 300))
    result = to_onnx(model, tmp_path / "tutorial.onnx")
    assert result.max_abs_diff is not None and result.max_abs_diff <= ATOL
    ops = lstm_ops(result.path)
    assert ops.count("LSTM") == 1 and not {"Loop", "Scan"} & set(ops)
    x = padded_ids(5000, steps=300)
    expected, got = run_both(model, result.path, x)
    assert got.shape == (5, 1)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    # the sequence axis is dynamic: a 300-step model runs on 40 steps
    expected, got = run_both(model, result.path, padded_ids(5000, steps=40, seed=1))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_masked_bidirectional_stack_matches_pytorch(tmp_path):
    model = _built([Embedding(50, 7, mask_zero=True), Bidirectional(LSTM(8, return_sequences=True)), LSTM(6),
                    Dense(1)])
    result = to_onnx(model, tmp_path / "stack.onnx")
    ops = lstm_ops(result.path)
    assert ops.count("LSTM") == 2 and not {"Loop", "Scan"} & set(ops)
    bidi = next(n for n in onnx.load(str(result.path)).graph.node if n.op_type == "LSTM")
    assert onnx.helper.get_attribute_value(bidi.attribute[[a.name for a in bidi.attribute].index("direction")]) \
        == b"bidirectional"
    x = padded_ids(50)
    expected, got = run_both(model, result.path, x)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    # a fully padded row gives exactly PyTorch's output: the Dense bias on zero states
    np.testing.assert_allclose(got[3], model.layers[-1].bias.detach().numpy(), atol=ATOL)


def test_pytorch_masked_rows_differ_from_unmasked(tmp_path):
    """The padding really is skipped (the check above would pass trivially if masks were ignored by both)."""
    model = _built([Embedding(50, 7, mask_zero=True), LSTM(5), Dense(1)])
    path = to_onnx(model, tmp_path / "m.onnx").path
    x = padded_ids(50)
    got = OnnxModel(path)(x).numpy()
    trimmed = OnnxModel(path)(x[1:2, 7:]).numpy()  # the left-padded row without its padding
    np.testing.assert_allclose(got[1], trimmed[0], atol=ATOL)
    unmasked = _built([Embedding(50, 7), LSTM(5), Dense(1)])
    unmasked.set_weights(model.get_weights())
    with torch.inference_mode():
        plain = unmasked(torch.from_numpy(x)).numpy()
    assert abs(plain[1, 0] - got[1, 0]) > 1e-4


# -- every option the exporter takes ---------------------------------------------------------------------
VARIANTS = {
    "go_backwards": lambda: [Embedding(30, 5, mask_zero=True), LSTM(4, go_backwards=True), Dense(2)],
    "go_backwards_sequences": lambda: [Embedding(30, 5, mask_zero=True), LSTM(4, go_backwards=True,
                                                                              return_sequences=True)],
    "sequences_out": lambda: [Embedding(30, 5, mask_zero=True), LSTM(4, return_sequences=True), Dense(3)],
    "zero_output_for_mask": lambda: [Embedding(30, 5, mask_zero=True), LSTM(4, return_sequences=True,
                                                                           zero_output_for_mask=True)],
    "zero_output_last": lambda: [Embedding(30, 5, mask_zero=True), LSTM(4, zero_output_for_mask=True)],
    "merge_sum": lambda: [Embedding(30, 5, mask_zero=True), Bidirectional(LSTM(4), merge_mode="sum")],
    "merge_mul_seq": lambda: [Embedding(30, 5, mask_zero=True),
                              Bidirectional(LSTM(4, return_sequences=True), merge_mode="mul")],
    "merge_ave_seq": lambda: [Embedding(30, 5, mask_zero=True),
                              Bidirectional(LSTM(4, return_sequences=True), merge_mode="ave")],
    "bidi_backwards_forward": lambda: [Embedding(30, 5, mask_zero=True),
                                       Bidirectional(LSTM(4, return_sequences=True, go_backwards=True))],
    "bidi_own_backward": lambda: [Embedding(30, 5, mask_zero=True),
                                  Bidirectional(LSTM(4, return_sequences=True),
                                                backward_layer=LSTM(3, return_sequences=True, go_backwards=True,
                                                                    activation="relu"))],
    "unmasked_bidi_seq": lambda: [Embedding(30, 5), Bidirectional(LSTM(4, return_sequences=True)), LSTM(3)],
    "unmasked_backwards": lambda: [Embedding(30, 5), LSTM(4, go_backwards=True, return_sequences=True)],
    "activations": lambda: [Embedding(30, 5, mask_zero=True),
                            LSTM(4, activation="relu", recurrent_activation="hard_sigmoid"), Dense(3, "softmax")],
    "linear_softsign": lambda: [Embedding(30, 5), LSTM(4, activation="softsign", recurrent_activation="sigmoid",
                                                       use_bias=False)],
    "dropout": lambda: [Embedding(30, 5, mask_zero=True), Dropout(0.5), LSTM(4, dropout=0.3, recurrent_dropout=0.2,
                                                                           return_sequences=True),
                        Dropout(0.5), LSTM(3), Dense(1, "sigmoid")],
    "average_pooling": lambda: [Embedding(30, 5, mask_zero=True), LSTM(4, return_sequences=True),
                                GlobalAveragePooling1D(), Dense(1, "tanh")],
    "max_pooling": lambda: [Embedding(30, 5, mask_zero=True), LSTM(4, return_sequences=True), GlobalMaxPooling1D()],
    "dense_activations": lambda: [Embedding(30, 5), LSTM(4), Dense(4, "elu"), Dense(4, "gelu"), Dense(4, "selu"),
                                  Dense(4, "swish"), Dense(4, "hard_silu"), Dense(4, "leaky_relu"),
                                  Dense(2, "log_softmax")],
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_matches_pytorch(tmp_path, name):
    model = _built(VARIANTS[name]())
    result = to_onnx(model, tmp_path / f"{name}.onnx")
    assert "LSTM" in lstm_ops(result.path)
    for steps, seed in ((12, 0), (3, 1), (1, 2)):
        expected, got = run_both(model, result.path, padded_ids(30, steps=steps, seed=seed))
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0, err_msg=f"{name}, {steps} steps")


def test_masking_layer_on_features(tmp_path):
    model = _built([Masking(mask_value=-1.0), Bidirectional(LSTM(4, return_sequences=True)), LSTM(3)],
                   (None, None, 6))
    path = to_onnx(model, tmp_path / "features.onnx").path
    x = np.random.default_rng(0).standard_normal((4, 9, 6)).astype(np.float32)
    x[0, :3] = -1.0
    x[1, 6:] = -1.0
    x[2] = -1.0
    x[3, 4, :] = -1.0
    x[3, 5, :2] = -1.0  # only some features at the mask value: a real step
    expected, got = run_both(model, path, x)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_fixed_length_flatten(tmp_path):
    model = _built([Embedding(30, 5), LSTM(4, return_sequences=True), Flatten(), Dense(1, "sigmoid")], (None, 8))
    path = to_onnx(model, tmp_path / "flat.onnx").path
    expected, got = run_both(model, path, padded_ids(30, steps=8))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_dynamic_axes_and_opset(tmp_path):
    model = _built([Embedding(30, 5, mask_zero=True), LSTM(4), Dense(1)], (None, 300))
    result = to_onnx(model, tmp_path / "m.onnx", opset=13)
    proto = onnx.load(str(result.path))
    assert proto.opset_import[0].version == 13
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    for batch, steps in ((1, 1), (7, 50), (256, 5)):
        x = np.random.default_rng(batch).integers(0, 30, size=(batch, steps))
        expected, got = run_both(model, result.path, x)
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_weight_mapping_gate_order():
    """Keras blocks (i, f, c, o) become ONNX blocks (i, o, f, c); W is (dirs, 4u, input)."""
    u, f = 2, 3
    kernel = np.concatenate([np.full((f, u), g, np.float32) for g in (1, 2, 3, 4)], axis=1)  # i=1 f=2 c=3 o=4
    rec = kernel[:u] * 10
    bias = np.repeat(np.array([1, 2, 3, 4], np.float32), u) * 100
    w, r, b = keras_to_onnx_lstm_weights(kernel, rec, bias)
    assert w.shape == (1, 4 * u, f) and r.shape == (1, 4 * u, u) and b.shape == (1, 8 * u)
    assert w[0, :, 0].tolist() == [1, 1, 4, 4, 2, 2, 3, 3]
    assert r[0, :, 0].tolist() == [10, 10, 40, 40, 20, 20, 30, 30]
    assert b[0].tolist() == [100, 100, 400, 400, 200, 200, 300, 300] + [0] * 8
    kernel_rand = np.random.default_rng(0).standard_normal((f, 4 * u)).astype(np.float32)
    w, _, _ = keras_to_onnx_lstm_weights(kernel_rand, rec, None)
    np.testing.assert_array_equal(w[0, u:2 * u], kernel_rand[:, 3 * u:].T)  # ONNX o = Keras o


def test_export_leaves_training_mode_alone(tmp_path):
    model = _built([Embedding(30, 5), LSTM(4), Dense(1)])
    model.train()
    to_onnx(model, tmp_path / "m.onnx")
    assert model.training


# -- bad input -----------------------------------------------------------------------------------------------
def test_custom_activation_names_layer_and_reason(tmp_path):
    model = _built([Embedding(30, 5), LSTM(4), Dense(1, activation=lambda t: t * 2, name="scorer")])
    with pytest.raises(ExportError, match=r"layer 'scorer'.*custom callable.*no ONNX equivalent"):
        to_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("kwargs, reason", [
    ({"stateful": True}, "stateful=True"),
    ({"activation": "gelu"}, "activation 'gelu' is not one of ONNX LSTM's activations"),
    ({"recurrent_activation": torch.special.expit}, "recurrent_activation .* custom callable"),
])
def test_unsupported_lstm_options(tmp_path, kwargs, reason):
    model = Sequential([Embedding(30, 5), LSTM(4, name="rnn", **kwargs)])
    model.build((2 if kwargs.get("stateful") else None, None))
    with pytest.raises(ExportError, match=rf"layer 'rnn' \(LSTM\) cannot be exported to ONNX: .*{reason}"):
        build_onnx(model)


def test_unsupported_layer_class(tmp_path):
    from lstmtext.layers import Layer

    class Doubler(Layer):
        def call(self, inputs, mask=None, training=False, **kw):
            return inputs * 2

    model = _built([Embedding(30, 5), Doubler(name="doubler"), LSTM(4)])
    with pytest.raises(ExportError, match=r"layer 'doubler' \(Doubler\).*no ONNX translation"):
        to_onnx(model, tmp_path / "m.onnx")


def test_merge_mode_none_and_unbuilt_and_opset(tmp_path):
    model = _built([Embedding(30, 5), Bidirectional(LSTM(4), merge_mode=None, name="bi")])
    with pytest.raises(ExportError, match=r"layer 'bi' \(Bidirectional\).*merge_mode=None"):
        build_onnx(model)
    with pytest.raises(ExportError, match="not built"):
        build_onnx(Sequential([Embedding(30, 5), LSTM(4)]))
    with pytest.raises(ConfigError, match="opset must be an integer from 13"):
        build_onnx(_built([Embedding(30, 5), LSTM(4)]), opset=9)
    with pytest.raises(ConfigError, match="give path="):
        to_onnx(_built([Embedding(30, 5), LSTM(4)]))
    with pytest.raises(ExportError, match="not a checkpoint folder"):
        to_onnx(tmp_path / "missing", tmp_path / "m.onnx")
