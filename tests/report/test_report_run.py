"""A tiny training run writes report/: valid PNG curves, confusion matrix, ROC, and a page that shows them."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch

from lstmtext.cli import main
from lstmtext.errors import CheckpointError, DataError
from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models import Sequential
from lstmtext.report import ReportCallback, rebuild_report, write_report
from lstmtext.text import Tokenizer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WORDS = ["the", "film", "plot", "and", "a", "was", "good", "great", "bad", "awful"]
PLOTS = ["loss.png", "accuracy.png", "confusion_matrix.png", "roc.png"]


def _data(n: int, rng: np.random.Generator, tok: Tokenizer) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = rng.integers(0, 2, n)
    texts = []
    for label in y:
        words = list(rng.choice(WORDS[:6], 6)) + list(rng.choice(WORDS[6:8] if label else WORDS[8:], 2))
        rng.shuffle(words)
        texts.append(" ".join(words) + (" <&> " if label else ""))  # markup that the page must escape
    x = np.zeros((n, 12), np.int64)
    for i, seq in enumerate(tok.texts_to_sequences(texts)):
        x[i, 12 - len(seq):] = seq
    return x, y.astype(np.float32), texts


def assert_png(path) -> np.ndarray:
    import matplotlib.image

    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE), path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, (path, img.shape)
    assert img[..., :3].std() > 0.02, f"{path} is blank"
    return img


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-epoch training run with a ReportCallback; returns its checkpoint folder."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tok = Tokenizer({w: i + 1 for i, w in enumerate(WORDS)}, num_words=14)
    x, y, _ = _data(160, rng, tok)
    x_test, y_test, texts = _data(60, rng, tok)
    model = Sequential([Embedding(14, 8), LSTM(6), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    folder = tmp_path_factory.mktemp("run") / "ckpt"
    cb = ReportCallback(folder, test_data=(x_test, y_test), texts=texts, labels=["negative", "positive"])
    history = model.fit(x, y, epochs=3, batch_size=32, validation_split=0.25, verbose=0, callbacks=[cb])
    assert cb.path == folder / "report" / "report.html"
    return folder, history.history, model, (x_test, y_test, texts)


def test_training_run_writes_pngs_and_page(run_dir):
    folder, history, _, (_, y_test, texts) = run_dir
    report = folder / "report"
    for name in PLOTS:
        assert_png(report / name)
    page = (report / "report.html").read_text(encoding="utf-8")
    for name in PLOTS:  # linked as files, and embedded (the page is self-contained)
        assert f'href="{name}"' in page
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted((report / n).read_bytes() for n in PLOTS)
    # the metrics table holds the run's numbers
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert f"{history[key][-1]:.4f}" in page
    data = json.loads((report / "report.json").read_text())
    assert data["history"] == history
    assert data["test"]["y_true"] == y_test.astype(int).tolist()
    # misclassified examples show their (escaped) text
    wrong = data["test"]["misclassified"]
    assert wrong and wrong[0]["text"] == texts[wrong[0]["index"]]
    shown = texts[wrong[0]["index"]].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert shown in page and "<&>" not in page
    probs = np.asarray(data["test"]["probabilities"])
    assert data["test"]["metrics"]["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y_test))


def test_report_command_rebuilds(run_dir, capsys):
    folder, _, _, _ = run_dir
    report = folder / "report"
    before = json.loads((report / "report.json").read_text())
    for name in [*PLOTS, "report.html"]:
        (report / name).unlink()
    assert main(["report", str(folder)]) == 0
    assert "report.html" in capsys.readouterr().out
    for name in PLOTS:
        assert_png(report / name)
    after = json.loads((report / "report.json").read_text())
    assert after["test"] == before["test"] and after["history"] == before["history"]
    assert 'href="roc.png"' in (report / "report.html").read_text()


def test_report_from_saved_model_without_test_data(tmp_path, run_dir):
    """A folder written by model.save (history in trainer.json) gets curves; no test section without data."""
    _, history, model, _ = run_dir
    folder = tmp_path / "saved"
    model.save(folder)
    page = rebuild_report(folder)
    names = sorted(p.name for p in page.parent.glob("*.png"))
    assert names == ["accuracy.png", "loss.png"]
    assert "Test split" not in page.read_text()
    assert json.loads((page.parent / "report.json").read_text())["history"] == history


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "not a checkpoint folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no report/report.json, config.json or training history"):
        rebuild_report(tmp_path / "empty")
    (tmp_path / "empty" / "report").mkdir()
    (tmp_path / "empty" / "report" / "report.json").write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="not an lstmtext report"):
        rebuild_report(tmp_path / "empty")
    with pytest.raises(DataError, match="test_data needs the model"):
        write_report(tmp_path / "x", history={"loss": [1.0]}, test_data=([[1]], [0]))


def test_write_report_decodes_ids_with_tokenizer(tmp_path, run_dir):
    _, history, model, (x_test, y_test, _) = run_dir
    tok = Tokenizer({w: i + 1 for i, w in enumerate(WORDS)}, num_words=14)
    page = write_report(tmp_path / "r", history=history, model=model, test_data=(x_test, y_test), tokenizer=tok)
    data = json.loads((page.parent / "report.json").read_text())
    for ex in data["test"]["misclassified"]:
        assert ex["text"] == tok.sequences_to_texts([x_test[ex["index"]]])[0]


def test_report_from_run_json_with_nan_markers(tmp_path):
    """A checkpoint's run.json stores NaN as {"__float__": "nan"}: the epoch stays in place, shown as n/a."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(
        {"seed": 7, "metrics": {"loss": [0.7, {"__float__": "nan"}, 0.5], "val_loss": [0.8, 0.75, 0.6]}}))
    page = rebuild_report(folder).read_text()
    assert "n/a" in page and "seed 7" in page
    data = json.loads((folder / "report" / "report.json").read_text())
    assert data["history"]["loss"] == [0.7, None, 0.5]
    assert_png(folder / "report" / "loss.png")

