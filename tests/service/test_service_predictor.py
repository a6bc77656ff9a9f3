"""Predictor: padding as Keras does it, binary and multi-class outputs, batching invariance, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from svc_tiny import encode, tiny_predictor

from lstmtext.errors import ConfigError, DataError
from lstmtext.predictor import Prediction, Predictor, finite_probabilities

SEQS = [[], [5], [1, 2, 3], list(range(1, 12)), [7, 8, 9, 10]]


@pytest.mark.keras
@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [1, 4, 8, None])
def test_pad_matches_keras(padding, truncating, maxlen):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    p = tiny_predictor(maxlen=maxlen, padding=padding, truncating=truncating)
    want = keras.utils.pad_sequences(SEQS, maxlen=maxlen, padding=padding, truncating=truncating, value=0)
    np.testing.assert_array_equal(p.pad(SEQS), want)


def test_binary_probabilities_and_labels():
    p = tiny_predictor()
    texts = ["a wonderful film", "", "🎬 bad movie", "x " * 500, "the plot was dull and boring"]
    preds = p.predict(texts)
    assert len(preds) == len(texts)
    with torch.inference_mode():
        raw = p.model(torch.from_numpy(p.pad(encode(texts)))).numpy()[:, 0]
    for pred, prob in zip(preds, raw):
        assert isinstance(pred, Prediction)
        assert pred.probabilities[1] == pytest.approx(float(prob), abs=1e-7)
        assert sum(pred.probabilities) == pytest.approx(1.0, abs=1e-6)
        assert pred.label_id == int(prob > 0.5) and pred.label == str(pred.label_id)
        assert pred.probability == pred.probabilities[pred.label_id]
    assert preds[0].to_dict() == {"label": preds[0].label, "label_id": preds[0].label_id,
                                  "probability": preds[0].probability, "probabilities": list(preds[0].probabilities)}


def test_binary_tie_goes_to_class_zero():
    class Half(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 1), 0.5)

    (pred,) = Predictor(Half(), encode, maxlen=5).predict(["anything"])
    assert pred.label_id == 0  # Keras's binary accuracy counts p > 0.5 as class 1


def test_multiclass_softmax_and_logits_agree():
    probs_model = tiny_predictor(classes=3, seed=3, labels=["neg", "neutral", "pos"])
    logits_model = tiny_predictor(classes=3, seed=3, labels=["neg", "neutral", "pos"], from_logits=True)
    texts = ["great fun", "awful", "the story of a film"]
    a, b = probs_model.predict_proba(texts), logits_model.predict_proba(texts)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.shape == (3, 3) and finite_probabilities(a)
    for pred, row in zip(probs_model.predict(texts), a):
        assert pred.label == ["neg", "neutral", "pos"][int(row.argmax())]


def test_batch_equals_one_by_one_and_chunking():
    texts = [f"the {w} film was {v}" for w in ("good", "bad", "long") for v in ("fun", "dull", "sad", "great")]
    p = tiny_predictor(batch_size=5)
    whole = p.predict_proba(texts)
    single = np.concatenate([p.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(whole, single, atol=1e-6)
    assert p.predict([]) == []


def test_bad_input_and_settings_are_typed_errors():
    p = tiny_predictor()
    with pytest.raises(DataError, match="single string"):
        p.predict("just one string")
    with pytest.raises(DataError, match=r"texts\[1\] must be a string, got int"):
        p.predict(["ok", 3])
    with pytest.raises(ConfigError, match="maxlen must be a positive integer"):
        tiny_predictor(maxlen=0)
    with pytest.raises(ConfigError, match="padding must be one of"):
        tiny_predictor(padding="left")
    with pytest.raises(ConfigError, match="batch_size"):
        tiny_predictor(batch_size=0)
    with pytest.raises(ConfigError, match="2 labels"):
        tiny_predictor(classes=3, labels=["a", "b"]).predict(["x"])

    class Wrong(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0] + 1, 1)

    with pytest.raises(ConfigError, match="returned shape"):
        Predictor(Wrong(), encode, maxlen=4).predict(["x"])


def test_metadata_reports_padding_and_version():
    meta = tiny_predictor(version="v7").metadata
    assert meta["version"] == "v7" and meta["maxlen"] == 20 and meta["padding"] == "pre"
    assert meta["vocab_size"] == 32


def test_predictor_is_the_package_level_inference_api():
    import lstmtext
    from lstmtext.predictor import Predictor

    assert lstmtext.Predictor is Predictor and "Predictor" in lstmtext.__all__
    with pytest.raises(AttributeError, match="no attribute 'Predicter'"):
        lstmtext.Predicter  # noqa: B018


def test_bfloat16_predictor_stays_close_to_float32_in_every_chunk_thread():
    # The precision context is per thread: with several chunks the model runs on a worker thread, which
    # must run it in bfloat16 too. LSTM(64) takes the per-step GEMM strategy, whose products it changes.
    from lstmtext import layers
    from lstmtext.kernels.build import load_ops
    from lstmtext.kernels.strategies import bfloat16_supported
    from lstmtext.models import Sequential

    if not bfloat16_supported():
        pytest.skip("no native bfloat16 matrix products on this CPU")
    torch.manual_seed(0)
    model = Sequential([layers.Embedding(40, 16), layers.LSTM(64), layers.Dense(1, activation="sigmoid")])
    model.build((None, 12))
    for p in model.parameters():
        p.data.mul_(4.0)
    texts = ["a wonderful film", "dull", "the plot was long and boring", "great fun", "sad story"] * 3
    f32 = Predictor(model, encode, maxlen=12, batch_size=4).predict_proba(texts)
    bf16 = Predictor(model, encode, maxlen=12, batch_size=4, bfloat16=True).predict_proba(texts)
    np.testing.assert_allclose(bf16, f32, atol=2e-2)
    ops = load_ops()
    if ops is not None and ops.has_bf16_impl():
        assert not np.array_equal(bf16[4:], f32[4:])  # chunks after the first ran in bfloat16 as well
