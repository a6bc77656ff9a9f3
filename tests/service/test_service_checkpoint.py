"""Predictor.from_checkpoint / save: a verified folder gives back the same predictions, padding and labels."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch
from svc_helpers import running

from lstmtext.errors import CheckpointError
from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models import Input, Sequential
from lstmtext.predictor import Predictor
from lstmtext.service import ServiceConfig, create_app
from lstmtext.text import Tokenizer, Vocab

DOCS = [["the", "film", "was", "good"], ["a", "bad", "film"], ["good", "acting", "bad", "plot"], ["the", "end"]]
TEXTS = ["The film was GOOD!", "a bad, bad plot", "", "unknown words only 🎬", "the end " * 30]


def _model(classes: int = 1, activation: str = "sigmoid", seed: int = 0, input_len: int | None = None):
    torch.manual_seed(seed)
    layers = [Input(shape=(input_len,))] if input_len else []
    m = Sequential([*layers, Embedding(20, 6), LSTM(5), Dense(classes, activation=activation)])
    m(torch.zeros(1, input_len or 9, dtype=torch.long))
    return m


def _tokenizer() -> Tokenizer:
    return Tokenizer(Vocab.build(DOCS), num_words=20)


def test_round_trip_predictions_padding_labels(tmp_path):
    p = Predictor(_model(), _tokenizer(), maxlen=7, padding="post", truncating="post", labels=["neg", "pos"])
    p.save(tmp_path / "ck")
    q = Predictor.from_checkpoint(tmp_path / "ck")
    assert q.predict(TEXTS) == p.predict(TEXTS)
    assert (q.maxlen, q.padding, q.truncating, q.labels) == (7, "post", "post", ("neg", "pos"))
    ids = _tokenizer().texts_to_sequences(TEXTS)
    np.testing.assert_array_equal(q.pad(ids), p.pad(ids))
    assert q.predict(["good film"])[0].label in ("neg", "pos")
    meta = q.metadata
    assert meta["vocab_size"] == len(Vocab.build(DOCS)) and meta["tokenizer"]["num_words"] == 20
    assert meta["config"]["class_name"] == "Sequential" and "torch" in meta["versions"]
    assert Predictor.from_checkpoint(tmp_path / "ck").version == q.version  # same files, same version


def test_version_changes_with_weights(tmp_path):
    Predictor(_model(seed=0), _tokenizer(), maxlen=7).save(tmp_path / "a")
    Predictor(_model(seed=1), _tokenizer(), maxlen=7).save(tmp_path / "b")
    assert Predictor.from_checkpoint(tmp_path / "a").version != Predictor.from_checkpoint(tmp_path / "b").version


def test_multiclass_softmax_and_logits(tmp_path):
    soft = Predictor(_model(classes=3, activation="softmax"), _tokenizer(), maxlen=6, labels=["a", "b", "c"])
    soft.save(tmp_path / "soft")
    q = Predictor.from_checkpoint(tmp_path / "soft")
    assert not q.from_logits and q.predict(TEXTS) == soft.predict(TEXTS)
    assert q.predict_proba(TEXTS).shape == (len(TEXTS), 3)

    linear = _model(classes=1, activation="linear")
    Predictor(linear, _tokenizer(), maxlen=6).save(tmp_path / "logits")
    q = Predictor.from_checkpoint(tmp_path / "logits")
    assert q.from_logits
    with torch.inference_mode():
        logits = linear(torch.from_numpy(q.pad(_tokenizer().texts_to_sequences(TEXTS)))).numpy()[:, 0]
    np.testing.assert_allclose(q.predict_proba(TEXTS)[:, 1], 1 / (1 + np.exp(-logits)), rtol=1e-5)


def test_bare_tokenizer_vocab_uses_the_declared_input_length(tmp_path):
    from lstmtext.checkpoint import save_checkpoint
    from lstmtext.layers import serialize

    m = _model(input_len=12)
    save_checkpoint(tmp_path / "ck", config=serialize(m), weights=m.state_dict(), vocab=_tokenizer().to_json_dict())
    q = Predictor.from_checkpoint(tmp_path / "ck")
    assert (q.maxlen, q.padding, q.truncating, q.labels) == (12, "pre", "pre", None)
    assert q.predict(TEXTS) == Predictor(m, _tokenizer(), maxlen=12).predict(TEXTS)


def test_bad_folders_are_checkpoint_errors_naming_the_file(tmp_path):
    Predictor(_model(), _tokenizer(), maxlen=7).save(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="nope"):
        Predictor.from_checkpoint(tmp_path / "nope")
    weights = tmp_path / "ck" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Predictor.from_checkpoint(tmp_path / "ck")

    from lstmtext.checkpoint import save_checkpoint
    from lstmtext.layers import serialize

    m = _model()
    save_checkpoint(tmp_path / "novocab", config=serialize(m), weights=m.state_dict())
    with pytest.raises(CheckpointError, match=r"vocab.json: missing"):
        Predictor.from_checkpoint(tmp_path / "novocab")
    bad = {"format": "lstmtext.inference", "version": 1, "tokenizer": _tokenizer().to_json_dict(),
           "sequence": {"maxlen": 5, "padding": "middle"}, "labels": None}
    save_checkpoint(tmp_path / "badpad", config=serialize(m), weights=m.state_dict(), vocab=bad)
    with pytest.raises(CheckpointError, match=r"vocab.json.*padding must be one of"):
        Predictor.from_checkpoint(tmp_path / "badpad")
    other = _model(classes=2, activation="softmax")
    save_checkpoint(tmp_path / "mismatch", config=serialize(m), weights=other.state_dict(),
                    vocab=_tokenizer().to_json_dict())
    with pytest.raises(CheckpointError, match=r"model.safetensors: weight .* has shape"):
        Predictor.from_checkpoint(tmp_path / "mismatch")


def test_service_serves_and_reloads_real_checkpoints(tmp_path):
    Predictor(_model(seed=0), _tokenizer(), maxlen=7).save(tmp_path / "v1")
    Predictor(_model(seed=1), _tokenizer(), maxlen=7).save(tmp_path / "v2")
    Predictor(_model(seed=2), _tokenizer(), maxlen=7).save(tmp_path / "tampered")
    (tmp_path / "tampered" / "config.json").write_text(json.dumps({"class_name": "Lambda", "config": {}}))
    v1, v2 = Predictor.from_checkpoint(tmp_path / "v1"), Predictor.from_checkpoint(tmp_path / "v2")
    auth = {"authorization": "Bearer admin-token-1"}

    async def main():
        async with running(create_app(tmp_path / "v1", ServiceConfig(admin_token="admin-token-1"))) as c:
            first = (await c.post("/v1/predict", json={"texts": TEXTS})).json()
            model = (await c.get("/v1/model")).json()
            bad = await c.post("/admin/reload", json={"path": str(tmp_path / "tampered")}, headers=auth)
            still = (await c.post("/v1/predict", json={"texts": TEXTS})).json()
            good = await c.post("/admin/reload", json={"path": str(tmp_path / "v2")}, headers=auth)
            second = (await c.post("/v1/predict", json={"texts": TEXTS})).json()
            return first, model, bad, still, good, second

    first, model, bad, still, good, second = asyncio.run(main())
    assert first == {"predictions": [x.to_dict() for x in v1.predict(TEXTS)], "model_version": v1.version}
    assert model["version"] == v1.version and model["maxlen"] == 7
    assert "source" not in model and str(tmp_path) not in json.dumps(model)  # no server path in public answers
    assert bad.status_code == 422 and "config.json" in bad.json()["detail"]  # manifest check fails first
    assert still == first
    assert good.status_code == 200 and good.json()["model_version"] == v2.version
    assert second == {"predictions": [x.to_dict() for x in v2.predict(TEXTS)], "model_version": v2.version}
