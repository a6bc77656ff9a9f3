"""``lstmtext train`` writes report/ in its checkpoint folder (and TensorBoard logs with --tensorboard)."""

from __future__ import annotations

import json

import pytest

from lstmtext.cli import main

FAST = ["--num-words", "200", "--maxlen", "40", "--batch-size", "16", "--verbose", "0"]


def test_train_writes_report_and_a_new_run_replaces_it(tmp_path, tiny_imdb_archive, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "imdb"
    args = ["train", "--preset", "keras-imdb", "--data", str(tiny_imdb_archive), "--out", str(out), "--seed", "3",
            *FAST]
    assert main([*args, "--epochs", "1", "--tensorboard", str(tmp_path / "tb")]) == 0
    report = out / "report"
    assert sorted(p.name for p in report.glob("*.png")) == ["accuracy.png", "confusion_matrix.png", "loss.png",
                                                            "roc.png"]
    data = json.loads((report / "report.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert data["history"] == run["metrics"] and data["test"]["labels"] == ["neg", "pos"]
    assert data["test"]["evaluate"] == run["test_metrics"]
    assert len(data["test"]["y_true"]) == 40
    assert all(ex["text"] for ex in data["test"]["misclassified"])  # decoded words of the review
    assert list((tmp_path / "tb" / "validation").glob("events.out.tfevents.*"))
    # report/ does not stop a new run from replacing the checkpoint
    capsys.readouterr()
    assert main([*args, "--epochs", "2", "--overwrite"]) == 0
    data = json.loads((report / "report.json").read_text())
    assert len(data["history"]["loss"]) == 2
    assert 'href="loss.png"' in (report / "report.html").read_text()
