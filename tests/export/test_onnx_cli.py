"""``lstmtext export``: the command line over `lstmtext.export.to_onnx`."""

from __future__ import annotations

import onnx
import pytest
import torch

from lstmtext.checkpoint import save_checkpoint
from lstmtext.cli import main
from lstmtext.layers import LSTM, Dense, Embedding, serialize
from lstmtext.models import Sequential


def _folder(tmp_path, **lstm):
    torch.manual_seed(0)
    model = Sequential([Embedding(40, 4, mask_zero=True), LSTM(3, name="rnn", **lstm), Dense(1, "sigmoid")])
    model.build((2 if lstm.get("stateful") else None, 10))
    return save_checkpoint(tmp_path / "ckpt", config=serialize(model), weights=model.state_dict())


def test_export_command(tmp_path, capsys):
    folder = _folder(tmp_path)
    out = tmp_path / "exported" / "m.onnx"
    assert main(["export", str(folder), "--format", "onnx", "--out", str(out), "--opset", "15"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "max abs difference" in printed
    assert onnx.load(str(out)).opset_import[0].version == 15
    assert main(["export", str(folder)]) == 0
    assert (folder / "model.onnx").is_file()


def test_export_command_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing")]) == 1
    assert "not a checkpoint folder" in capsys.readouterr().err
    folder = _folder(tmp_path, stateful=True)
    assert main(["export", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "lstmtext export: error: layer 'rnn' (LSTM) cannot be exported to ONNX: stateful=True" in err
    assert main(["export", str(folder), "--opset", "7"]) == 1
    assert "opset must be an integer from 13" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["export", str(folder), "--format", "tflite"])
    assert e.value.code == 2


def test_predict_backend_onnx(tmp_path, capsys):
    """``lstmtext predict --backend onnx`` prints the PyTorch backend's labels and probabilities."""
    import json

    from lstmtext.predictor import Predictor
    from lstmtext.text import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer({w: i + 1 for i, w in enumerate(["good", "bad", "film", "the", "plot"])}, num_words=9)
    model = Sequential([Embedding(9, 4, mask_zero=True), LSTM(3), Dense(1, "sigmoid")])
    model.build((None, 8))
    folder = Predictor(model, tok, maxlen=8, labels=["neg", "pos"]).save(tmp_path / "ckpt")
    texts = ["the film was good", "bad plot", "", "good " * 20]
    capsys.readouterr()  # only the commands' output below (another test module may make saving talk)

    def run(source, *extra):
        assert main(["predict", source, *texts, "--format", "jsonl", *extra]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    expected = run(str(folder))
    for got in (run(str(folder), "--backend", "onnx"),
                run(str(to_onnx_file(folder, tmp_path / "m.onnx")), "--backend", "onnx")):
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        for g, e in zip(got, expected):
            assert g["probabilities"] == pytest.approx(e["probabilities"], abs=1e-5)
    with pytest.raises(SystemExit):
        main(["predict", str(folder), "x", "--backend", "tflite"])


def to_onnx_file(folder, path):
    from lstmtext.export import to_onnx

    return to_onnx(folder, path).path
