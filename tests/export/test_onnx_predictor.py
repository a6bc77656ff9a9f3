"""Exports from checkpoint folders: tokenizer and padding travel with the file; the ONNX Predictor backend."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from lstmtext.checkpoint import save_checkpoint
from lstmtext.errors import ExportError
from lstmtext.export import OnnxModel, onnx_predictor, to_onnx
from lstmtext.layers import LSTM, Bidirectional, Dense, Embedding, serialize
from lstmtext.models import Sequential
from lstmtext.predictor import Predictor
from lstmtext.text import Tokenizer

WORDS = ["the", "film", "great", "bad", "was", "a", "plot", "acting", "loved", "boring", "and", "not"]
TEXTS = ["The film was great, loved the acting!", "Boring plot and bad acting.", "", "not a film",
         "great " * 40, "Zyx unknown words only"]


@pytest.fixture
def tokenizer() -> Tokenizer:
    return Tokenizer({w: i + 1 for i, w in enumerate(WORDS)}, num_words=14)


def _model(mask_zero: bool) -> Sequential:
    torch.manual_seed(1)
    model = Sequential([Embedding(14, 6, mask_zero=mask_zero), Bidirectional(LSTM(5)), Dense(1, "sigmoid")])
    model.build((None, 20))
    return model


def _checkpoint(tmp_path, model, vocab):
    return save_checkpoint(tmp_path / "ckpt", config=serialize(model), weights=model.state_dict(), vocab=vocab)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_checkpoint_export_carries_tokenizer_and_padding(tmp_path, tokenizer, mask_zero):
    model = _model(mask_zero)
    vocab = {"format": "lstmtext.inference", "version": 1, "tokenizer": tokenizer.to_json_dict(),
             "sequence": {"maxlen": 12, "padding": "post", "truncating": "post", "value": 0},
             "labels": ["negative", "positive"]}
    folder = _checkpoint(tmp_path, model, vocab)
    result = to_onnx(folder)
    assert result.path == folder / "model.onnx" and result.max_abs_diff <= 1e-5
    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    record = json.loads(props["lstmtext.inference"])
    assert record["sequence"] == vocab["sequence"] and record["labels"] == ["negative", "positive"]
    assert Tokenizer.from_json_dict(record["tokenizer"]) == tokenizer
    assert json.loads(props["lstmtext.model_config"])["class_name"] == "Sequential"
    side = json.loads(result.sidecar.read_text())
    assert side["model"] == "model.onnx" and side["input"]["name"] == "inputs" and side["sequence"]["maxlen"] == 12
    assert "a-z" in side["tokenization_rule"]

    # The ONNX predictor (from the file alone) gives the PyTorch Predictor's probabilities.
    reference = Predictor(model, tokenizer.texts_to_sequences, maxlen=12, padding="post", truncating="post",
                          labels=["negative", "positive"])
    expected = reference.predict_proba(TEXTS)
    for source in (result.path, folder):
        got = onnx_predictor(source, batch_size=4).predict_proba(TEXTS)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    preds = onnx_predictor(result.path).predict(TEXTS)
    assert [p.label for p in preds] == [p.label for p in reference.predict(TEXTS)]


def test_bare_tokenizer_vocab_gets_keras_defaults(tmp_path, tokenizer):
    model = _model(True)
    folder = _checkpoint(tmp_path, model, tokenizer.to_json_dict())
    result = to_onnx(folder, tmp_path / "out" / "m.onnx", opset=15)
    record = OnnxModel(result.path).inference_record()
    assert record["sequence"] == {"maxlen": 20, "padding": "pre", "truncating": "pre", "value": 0}
    assert record["from_logits"] is False
    assert result.sidecar == tmp_path / "out" / "m.onnx.json"


def test_sidecar_scores_raw_text_without_lstmtext(tmp_path, tokenizer):
    """Everything needed to score text outside Python is in the sidecar: tokenize, look up, pad, run."""
    import re

    model = _model(True)
    folder = _checkpoint(tmp_path, model, tokenizer.to_json_dict())
    result = to_onnx(folder)
    side = json.loads(result.sidecar.read_text())
    cfg, words = side["tokenizer"]["config"], side["tokenizer"]["vocab"]["words"]
    rank = {w: i + 1 for i, w in enumerate(words)}

    def encode(text: str) -> list[int]:
        toks = [t.strip("'") for t in re.findall(r"[a-z']+", text.lower().replace("<br />", " "))]
        ids = [rank.get(t, len(words) + 1) + cfg["index_from"] for t in toks if t]
        ids = [i if cfg["skip_top"] <= i < cfg["num_words"] else cfg["oov_char"] for i in ids]
        return [cfg["start_char"], *ids]

    maxlen = side["sequence"]["maxlen"]
    rows = np.zeros((len(TEXTS), maxlen), np.int64)
    for r, text in enumerate(TEXTS):
        ids = encode(text)[-maxlen:]
        rows[r, maxlen - len(ids):] = ids  # "pre" padding and truncation
    got = OnnxModel(result.path)(rows).numpy()[:, 0]
    expected = onnx_predictor(folder).predict_proba(TEXTS)[:, 1]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_no_tokenizer_no_predictor(tmp_path):
    model = _model(False)
    path = to_onnx(model, tmp_path / "m.onnx").path
    assert not (tmp_path / "m.onnx.json").exists()
    with pytest.raises(ExportError, match="no tokenizer record"):
        onnx_predictor(path)
    with pytest.raises(ExportError, match="no such file or folder"):
        onnx_predictor(tmp_path / "nope.onnx")


def test_corrupt_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(ExportError, match="bad.onnx: onnxruntime cannot load it"):
        OnnxModel(bad)


def test_bad_inference_record(tmp_path, tokenizer):
    model = _model(False)
    with pytest.raises(ExportError, match=r"sequence.padding must be 'pre' or 'post', got 'left'"):
        to_onnx(model, tmp_path / "m.onnx", inference={"tokenizer": tokenizer, "sequence": {"padding": "left"}})
    with pytest.raises(ExportError, match="not an lstmtext tokenizer"):
        to_onnx(model, tmp_path / "m.onnx", inference={"tokenizer": {"words": []}})
    result = to_onnx(model, tmp_path / "m.onnx", inference={"tokenizer": tokenizer, "labels": ["neg", "pos"]})
    assert OnnxModel(result.path).inference_record()["labels"] == ["neg", "pos"]
