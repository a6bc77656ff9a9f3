"""ONNX export of Functional models (merges, attention, return_state/initial_state, nested models, several
inputs and outputs) and of models on raw text (a TextVectorization first, its vocabulary in the sidecar).

Every export runs onnxruntime and PyTorch on padded inputs before writing (atol 1e-5); the tests also
compare on their own inputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

import lstmtext
from lstmtext import layers
from lstmtext.errors import ExportError
from lstmtext.export import OnnxModel, build_onnx, onnx_predictor, to_onnx

ATOL = 1e-5
TEXTS = ["a good film", "a bad film, really bad", "great acting and a GREAT story!", "boring", "",
         "the plot was fine but slow and the ending was bad"]


def _ids(high: int, steps: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).integers(1, high, size=(5, steps), dtype=np.int64)
    x[1, :steps // 2] = 0  # left padding
    x[2, steps - 2:] = 0  # right padding
    x[3] = 0  # nothing real
    return x


def _torch(model, x):
    with torch.inference_mode():
        y = model(x if isinstance(x, list) else torch.from_numpy(x), training=False)
    return [t.numpy() for t in (y if isinstance(y, list) else [y])]


def _bilstm():
    inp = lstmtext.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(50, 8, mask_zero=True)(inp)
    x = layers.Bidirectional(layers.LSTM(6, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(5))(x)
    return lstmtext.Model(inp, layers.Dense(1, activation="sigmoid")(x)), [_ids(50, 11, 1)]


def _shared_embedding():
    a, b = lstmtext.Input(shape=(None,), dtype="int32", name="left"), lstmtext.Input(shape=(None,), name="right")
    emb = layers.Embedding(40, 6, mask_zero=True)
    both = layers.Concatenate()([layers.LSTM(5)(emb(a)), layers.LSTM(5)(emb(b))])
    return lstmtext.Model([a, b], layers.Dense(3, activation="softmax")(both)), [_ids(40, 7, 2), _ids(40, 4, 3)]


def _encoder_decoder():
    enc, dec = lstmtext.Input(shape=(None,), name="enc"), lstmtext.Input(shape=(None,), name="dec")
    _, h, c = layers.LSTM(7, return_state=True)(layers.Embedding(20, 5, mask_zero=True)(enc))
    seq, h2, c2 = layers.LSTM(7, return_sequences=True, return_state=True)(
        layers.Embedding(20, 5, mask_zero=True)(dec), initial_state=[h, c])
    probs = layers.Dense(20, activation="softmax")(seq)
    return lstmtext.Model([enc, dec], [probs, h2, c2]), [_ids(20, 9, 4), _ids(20, 6, 5)]


def _bidirectional_encoder():
    enc, dec = lstmtext.Input(shape=(None,), name="enc"), lstmtext.Input(shape=(None,), name="dec")
    _, fh, fc, bh, bc = layers.Bidirectional(layers.LSTM(4, return_state=True))(
        layers.Embedding(20, 5, mask_zero=True)(enc))
    h, c = layers.Concatenate()([fh, bh]), layers.Concatenate()([fc, bc])
    seq = layers.LSTM(8, return_sequences=True)(layers.Embedding(20, 5, mask_zero=True)(dec), initial_state=[h, c])
    return lstmtext.Model([enc, dec], layers.Dense(20, activation="softmax")(seq)), [_ids(20, 9, 4), _ids(20, 6, 5)]


def _attention():
    q = lstmtext.Input(shape=(None,))
    seq = layers.LSTM(8, return_sequences=True)(layers.Embedding(30, 8, mask_zero=True)(q))
    dot, scores = layers.Attention(use_scale=True)([seq, seq], return_attention_scores=True)
    causal = layers.Attention(score_mode="concat", use_scale=True)([seq, seq], use_causal_mask=True)
    additive = layers.AdditiveAttention()([seq, seq, seq])
    mixed = layers.Concatenate()([seq, dot, causal, additive])
    pooled = layers.GlobalAveragePooling1D()(mixed)
    return lstmtext.Model(q, [layers.Dense(1, activation="sigmoid")(pooled), scores]), [_ids(30, 8, 6)]


def _merges_and_nested():
    inner_in = lstmtext.Input(shape=(None, 4))
    inner = lstmtext.Model(inner_in, layers.LSTM(4, return_sequences=True)(layers.Masking()(inner_in)), name="inner")
    x = lstmtext.Input(shape=(None, 4))
    a, b = inner(x), layers.LSTM(4, return_sequences=True)(layers.Masking()(x))
    merged = [m()([a, b]) for m in (layers.Add, layers.Subtract, layers.Average, layers.Multiply, layers.Maximum,
                                     layers.Minimum)]
    seqs = layers.Concatenate(axis=1)([a, layers.Activation("tanh")(b)])
    pooled = [layers.LSTM(3)(t) for t in [*merged, seqs]]
    vectors = layers.Concatenate()(pooled)
    outs = [layers.Dense(2)(vectors), layers.Dot(axes=(2, 2))([a, b]), layers.Dot(axes=1, normalize=True)(pooled[:2])]
    data = np.random.default_rng(7).standard_normal((5, 6, 4)).astype(np.float32)
    data[1, :3] = 0.0  # Masking's default mask value
    data[3] = 0.0
    return lstmtext.Model(x, outs), [data]


def _seq2seq_decoder():
    # keras.io's character-level seq2seq: the inference decoder reuses the trained LSTM and Dense on new Inputs
    enc_in, dec_in = lstmtext.Input(shape=(None, 6)), lstmtext.Input(shape=(None, 7))
    _, h, c = layers.LSTM(5, return_state=True)(enc_in)
    decoder_lstm, decoder_dense = layers.LSTM(5, return_sequences=True, return_state=True), layers.Dense(7)
    decoder_dense(decoder_lstm(dec_in, initial_state=[h, c])[0])
    h_in, c_in = lstmtext.Input(shape=(5,), name="h"), lstmtext.Input(shape=(5,), name="c")
    step, h2, c2 = decoder_lstm(dec_in, initial_state=[h_in, c_in])
    rng = np.random.default_rng(8)
    data = [rng.random((5, 3, 7), dtype=np.float32), rng.random((5, 5), dtype=np.float32),
            rng.random((5, 5), dtype=np.float32)]
    return lstmtext.Model([dec_in, h_in, c_in], [decoder_dense(step), h2, c2]), data


@pytest.mark.parametrize("make", [_bilstm, _shared_embedding, _encoder_decoder, _bidirectional_encoder, _attention,
                                  _merges_and_nested, _seq2seq_decoder])
def test_functional_models_match_pytorch(tmp_path, make):
    torch.manual_seed(0)
    model, inputs = make()
    result = to_onnx(model, tmp_path / "m.onnx")
    assert result.max_abs_diff is not None and result.max_abs_diff <= ATOL
    proto = onnx.load(str(result.path))
    assert not {"Loop", "Scan"} & {n.op_type for n in proto.graph.node}
    session = OnnxModel(result.path).session
    names = [i.name for i in session.get_inputs()]
    if len(inputs) == 1:
        assert names == ["inputs"]
    else:
        assert names == [x.name for x in model.inputs]
    got = session.run(None, dict(zip(names, inputs)))
    expected = _torch(model, inputs if len(inputs) > 1 else inputs[0])
    assert len(got) == len(expected) == len(model.outputs)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=ATOL, rtol=0)


def test_a_predictor_needs_one_input(tmp_path):
    model, _ = _shared_embedding()
    to_onnx(model, tmp_path / "two.onnx")
    with pytest.raises(ExportError, match=r"the graph has 2 inputs \['left', 'right'\]"):
        onnx_predictor(tmp_path / "two.onnx")


def test_unexportable_graph_parts_are_named(tmp_path):
    from lstmtext.layers import Layer

    class Doubler(Layer):
        def call(self, inputs, mask=None, training=False, **kw):
            return inputs[0] * 2

    a, b = lstmtext.Input(shape=(None, 3)), lstmtext.Input(shape=(None, 3))
    model = lstmtext.Model([a, b], Doubler(name="twice")([a, b]))
    with pytest.raises(ExportError, match=r"layer 'twice' \(Doubler\)"):
        build_onnx(model)
    x, h = lstmtext.Input(shape=(None, 3)), lstmtext.Input(shape=(2,))
    bi = layers.Bidirectional(layers.LSTM(2), name="bi")(x, initial_state=[h, h, h, h])
    with pytest.raises(ExportError, match=r"layer 'bi' \(Bidirectional\).*called with \['initial_state'\]"):
        build_onnx(lstmtext.Model([x, h], bi))

    class Sub(lstmtext.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1)

        def call(self, inputs, training=None):
            return self.dense(inputs)

    sub = Sub()
    sub(np.zeros((1, 3), np.float32))
    with pytest.raises(ExportError, match="subclassed model is defined by Python code"):
        build_onnx(sub)


@pytest.mark.parametrize("options", [
    {"output_sequence_length": 12},
    {"ngrams": 2, "standardize": "lower", "max_tokens": 40},
    {"output_mode": "tf_idf"},
    {"split": "character", "output_mode": "count"},
])
def test_text_model_scores_raw_text(tmp_path, options):
    torch.manual_seed(0)
    tv = layers.TextVectorization(**options)
    tv.adapt(TEXTS)
    inp = lstmtext.Input(shape=(1,), dtype="string")
    x = tv(inp)
    if tv.output_mode == "int":
        x = layers.LSTM(4)(layers.Embedding(tv.vocabulary_size(), 8, mask_zero=True)(x))
    model = lstmtext.Model(inp, layers.Dense(1, activation="sigmoid")(x))
    result = to_onnx(model, tmp_path / "text.onnx", inference={"labels": ["neg", "pos"]})
    assert result.max_abs_diff <= ATOL
    side = json.loads(result.sidecar.read_text())
    assert side["tokenizer"] is None and side["labels"] == ["neg", "pos"]
    assert side["text_vectorization"]["vocabulary"] == tv.get_vocabulary()
    assert side["input"]["dtype"] == ("int64" if tv.output_mode == "int" else "float32")
    assert "ASCII" in side["text_vectorization_rule"]
    texts = TEXTS + ["an unseen wordzz", "GOOD, good!"]
    expected = model.predict(np.array(texts), verbose=0)[:, 0]
    predictor = onnx_predictor(result.path)
    np.testing.assert_allclose(predictor.predict_proba(texts)[:, 1], expected, atol=1e-6)
    assert predictor.predict(["a good film"])[0].label in ("neg", "pos")
    # the sidecar alone reproduces the ids: encode with its record, run the graph
    encoder = layers.TextVectorization(**{k: v for k, v in side["text_vectorization"].items()
                                          if k not in ("vocabulary", "idf_weights", "encoding")},
                                       vocabulary=side["text_vectorization"]["vocabulary"],
                                       idf_weights=side["text_vectorization"]["idf_weights"])
    feeds = {"inputs": encoder.vectorize(np.array(texts, dtype=object))}
    got = OnnxModel(result.path).session.run(None, feeds)[0][:, 0]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_text_checkpoint_exports_and_predicts_with_the_cli(tmp_path, capsys):
    from lstmtext.cli import main

    torch.manual_seed(0)
    tv = layers.TextVectorization(max_tokens=50)
    tv.adapt(TEXTS)
    model = lstmtext.Sequential([tv, layers.Embedding(50, 8, mask_zero=True), layers.LSTM(4),
                                 layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    model.fit(np.array(TEXTS), np.array([1, 0, 1, 0, 0, 1], np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "ckpt")
    expected = float(model.predict(np.array(["a good film"]), verbose=0)[0, 0])
    assert main(["export", str(tmp_path / "ckpt"), "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    for source in (tmp_path / "m.onnx", tmp_path / "ckpt"):
        assert main(["predict", str(source), "a good film", "--backend", "onnx", "--format", "jsonl"]) == 0
        row = json.loads(capsys.readouterr().out.splitlines()[0])
        assert row["probabilities"][1] == pytest.approx(expected, abs=1e-6)


def test_text_exports_refuse_what_the_sidecar_cannot_say(tmp_path):
    tv = layers.TextVectorization(standardize=lambda s: s, name="custom")
    tv.adapt(TEXTS)
    inp = lstmtext.Input(shape=(1,), dtype="string")
    model = lstmtext.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling1D()(
        layers.Embedding(50, 4)(tv(inp)))))
    with pytest.raises(ExportError, match=r"layer 'custom' \(TextVectorization\).*standardize is a Python callable"):
        to_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    fresh = layers.TextVectorization(name="fresh")
    inp = lstmtext.Input(shape=(1,), dtype="string")
    model = lstmtext.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling1D()(layers.Embedding(50, 4)(fresh(inp)))))
    with pytest.raises(ExportError, match=r"layer 'fresh' \(TextVectorization\).*no vocabulary"):
        to_onnx(model, tmp_path / "m.onnx")


def test_a_damaged_text_record_is_named(tmp_path):
    tv = layers.TextVectorization(max_tokens=30, output_mode="multi_hot")
    tv.adapt(TEXTS)
    inp = lstmtext.Input(shape=(1,), dtype="string")
    result = to_onnx(lstmtext.Model(inp, layers.Dense(1)(tv(inp))), tmp_path / "m.onnx")
    proto = onnx.load(str(result.path))
    for bad, message in (({"standardize": {"class_name": "function"}}, r"standardize must be a mode name"),
                         ({"vocabulary": "vocab.txt"}, r"with a vocabulary list"),
                         ({"max_tokens": 1}, r"does not describe a TextVectorization layer")):
        prop = next(p for p in proto.metadata_props if p.key == "lstmtext.inference")
        record = json.loads(prop.value)
        record["text_vectorization"].update(bad)
        damaged = onnx.ModelProto()
        damaged.CopyFrom(proto)
        next(p for p in damaged.metadata_props if p.key == "lstmtext.inference").value = json.dumps(record)
        onnx.save(damaged, str(tmp_path / "bad.onnx"))
        with pytest.raises(ExportError, match=rf"bad.onnx: .*{message}"):
            OnnxModel(tmp_path / "bad.onnx")
