"""``lstmtext train`` -> ``evaluate`` -> ``predict`` -> ``summary`` end to end on a tiny generated aclImdb archive."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstmtext.checkpoint import CheckpointWarning
from lstmtext.cli import main
from lstmtext.predictor import Predictor
from lstmtext.run import resolve_run_config, train_from_config
from lstmtext.training.callbacks import Callback

from .conftest import FAST

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture()
def trained(tiny_run):
    return tiny_run


def test_train_prints_the_resolved_config_first_and_writes_a_checkpoint(trained):
    out, printed = trained
    assert printed.startswith('name = "keras-imdb"\n\n[data]\n')
    assert "num_words = 200" in printed and "vocab_size = 200" in printed  # the embedding follows --num-words
    assert "seed = 7" in printed and "epochs = 1" in printed
    assert "data: 40 train / 40 test examples, 2 classes (neg, pos)" in printed
    assert "test: accuracy: " in printed and f"saved {out}" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "manifest.json", "model.safetensors", "optimizer.safetensors", "report", "run.json",
        "trainer.json", "vocab.json"]
    assert f"report: {out / 'report' / 'report.html'}" in printed


def test_run_json_records_command_config_seed_versions_device_and_metrics(trained):
    out, _ = trained
    run = json.loads((out / "run.json").read_text())
    assert run["command"][:3] == ["lstmtext", "train", "--preset"]
    assert run["seed"] == 7 and run["config"]["train"]["seed"] == 7
    assert run["config"]["data"]["maxlen"] == 40 and run["config"]["model"]["lstm_sizes"] == [10]
    assert run["device"] == "cpu" and "torch" in run["library_versions"]
    assert set(run["metrics"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 1 for v in run["metrics"].values())
    assert set(run["test_metrics"]) == {"loss", "accuracy"} and 0 <= run["test_metrics"]["accuracy"] <= 1
    assert run["data"]["classes"] == ["neg", "pos"] and run["data"]["test_examples"] == 40


def test_predictor_and_predict_command_use_the_saved_vocabulary(trained, capsys):
    out, _ = trained
    predictor = Predictor.from_checkpoint(out)
    assert predictor.maxlen == 40 and predictor.labels == ("neg", "pos")
    texts = ["A wonderful, moving film.", "Boring and awful, a waste of time."]
    expected = predictor.predict(texts)
    assert main(["predict", str(out), *texts, "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == [p.label for p in expected]
    assert [r["probability"] for r in rows] == pytest.approx([p.probability for p in expected], abs=1e-6)


def test_evaluate_reproduces_the_test_metrics_of_training(trained, tiny_imdb_archive, capsys):
    out, _ = trained
    recorded = json.loads((out / "run.json").read_text())["test_metrics"]
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 40 and "test split" in result["data"]
    assert result["metrics"] == pytest.approx(recorded, abs=1e-6)
    # Given data: raw test reviews through the checkpoint's own tokenizer give the same numbers.
    assert main(["evaluate", str(out), "--data", str(tiny_imdb_archive), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == pytest.approx(recorded, abs=1e-5)
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("40 examples from ") and f"accuracy: {recorded['accuracy']:.4f}" in printed


def test_summary_prints_the_keras_table_and_the_run(trained, capsys):
    out, _ = trained
    assert main(["summary", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "│ lstm (LSTM)" in printed and "Total params: 4,051" in printed  # 200*15 + 1,040 + 11
    assert "seed:           7" in printed and "classes:        neg, pos" in printed
    assert "sequences:      maxlen 40, padding 'pre', truncating 'pre'" in printed
    assert "test:           accuracy: " in printed and "files:" in printed and "vocab.json" in printed


def test_export_of_a_trained_run(trained, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out, _ = trained
    target = tmp_path / "m.onnx"
    assert main(["export", str(out), "--out", str(target)]) == 0
    assert target.is_file() and "max abs difference" in capsys.readouterr().out


def test_an_existing_run_is_not_replaced_without_overwrite(trained, tiny_imdb_archive, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_imdb_archive), "--out", str(out), "--seed", "1", *FAST]
    assert main(args) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 1
    assert "already holds a checkpoint; pass --resume to continue that run or --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--seed", "2"]) == 0
    assert (out / "model.safetensors").read_bytes() != before
    assert json.loads((out / "run.json").read_text())["seed"] == 2


def test_same_seed_same_model(tiny_imdb_archive, tmp_path):
    runs = []
    for name in ("a", "b"):
        assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(tmp_path / name), "--seed", "5",
                     *FAST]) == 0
        runs.append(json.loads((tmp_path / name / "run.json").read_text()))
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert runs[0]["test_metrics"] == runs[1]["test_metrics"]


def test_unseeded_run_records_the_seed_it_drew(tiny_imdb_archive, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(out), *FAST]) == 0
    seed = json.loads((out / "run.json").read_text())["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    again = tmp_path / "again"
    assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(again), "--seed", str(seed), *FAST]) == 0
    assert (out / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()


def test_multiclass_jsonl_with_named_columns(tmp_path, capsys):
    words = {"sports": "match goal team score player", "politics": "vote election law party senate",
             "science": "atom cell experiment theory physics"}
    lines = []
    for i in range(60):
        topic = list(words)[i % 3]
        picked = words[topic].split()
        lines.append(json.dumps({"body": f"the {picked[i % 5]} and {picked[(i + 2) % 5]} today", "topic": topic}))
    data = tmp_path / "news.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "news"
    assert main(["train", "--data", str(data), "--text-column", "body", "--label-column", "topic", "--out", str(out),
                 "--seed", "0", "--num-words", "50", "--maxlen", "8", "--batch-size", "8", "--epochs", "2",
                 "--verbose", "0"]) == 0
    printed = capsys.readouterr().out
    assert 'note: 3 classes: model.output_units = 3, model.output_activation = "softmax"' in printed
    assert 'train.loss = "sparse_categorical_crossentropy"' in printed
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["model"]["output_units"] == 3 and run["data"]["classes"] == ["politics", "science", "sports"]
    assert run["data"]["train_examples"] == 48 and run["data"]["test_examples"] == 12  # test_split 0.2
    predictor = Predictor.from_checkpoint(out)
    probs = predictor.predict_proba(["goal team"])
    assert probs.shape == (1, 3) and math.isclose(float(probs.sum()), 1.0, rel_tol=1e-5)
    assert predictor.predict(["goal team"])[0].label in words
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 12 and result["metrics"] == pytest.approx(run["test_metrics"], abs=1e-6)
    # The whole file as evaluation data: labels are matched to the model's class names.
    assert main(["evaluate", str(out), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 60


class _Interrupt(Callback):
    """Stops a run after ``epoch`` (0-based) as Ctrl-C would, once that epoch's checkpoint is saved."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_continues_an_interrupted_run_to_the_same_weights(tiny_imdb_archive, tmp_path, capsys):
    flags = ["--data", str(tiny_imdb_archive), "--seed", "3", "--epochs", "3", *FAST[:6], "--verbose", "0"]
    assert main(["train", *flags, "--out", str(tmp_path / "whole")]) == 0
    cut = tmp_path / "cut"
    cfg = resolve_run_config(overrides={"data": {"archive": str(tiny_imdb_archive), "num_words": 200, "maxlen": 40},
                                        "train": {"batch_size": 16, "epochs": 3, "seed": 3},
                                        "run": {"out": str(cut), "verbose": 0}})
    with pytest.raises(KeyboardInterrupt):
        train_from_config(cfg, callbacks=[_Interrupt(1)])
    # The checkpoint of epoch 2 predicts on raw text already, and records the history so far.
    assert Predictor.from_checkpoint(cut).predict(["a great film"])[0].label in ("neg", "pos")
    assert len(json.loads((cut / "run.json").read_text())["metrics"]["loss"]) == 2
    capsys.readouterr()
    assert main(["train", *flags, "--out", str(cut)]) == 1
    assert "pass --resume to continue that run" in capsys.readouterr().err
    assert main(["train", "--out", str(cut), "--resume"]) == 0  # the config comes from the checkpoint's run.json
    whole, resumed = (json.loads((tmp_path / d / "run.json").read_text()) for d in ("whole", "cut"))
    assert resumed["metrics"] == whole["metrics"] and len(resumed["metrics"]["loss"]) == 3
    assert resumed["test_metrics"] == whole["test_metrics"]
    assert (cut / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()


def test_python_dash_m_lstmtext_train(tiny_imdb_archive, tmp_path):
    """What ``torchrun -m lstmtext train`` runs in each process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "m"
    r = subprocess.run([sys.executable, "-m", "lstmtext", "train", "--data", str(tiny_imdb_archive), "--out", str(out),
                        "--seed", "1", *FAST], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"saved {out}" in r.stdout
    assert Predictor.from_checkpoint(out).predict(["great"])[0].label in ("neg", "pos")


def test_resume_with_more_epochs_extends_a_finished_run(tiny_imdb_archive, tmp_path):
    flags = ["--data", str(tiny_imdb_archive), "--seed", "4", *FAST[:6], "--verbose", "0"]
    assert main(["train", *flags, "--epochs", "2", "--out", str(tmp_path / "two")]) == 0
    assert main(["train", *flags, "--epochs", "1", "--out", str(tmp_path / "one"), "--overwrite"]) == 0
    # The recorded config says --overwrite; resuming it is still a resume.
    assert main(["train", "--out", str(tmp_path / "one"), "--resume", "--epochs", "2"]) == 0
    one, two = (json.loads((tmp_path / d / "run.json").read_text()) for d in ("one", "two"))
    assert one["metrics"] == two["metrics"] and one["test_metrics"] == two["test_metrics"]
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("one", "two")]
    assert weights[0] == weights[1]


def _reviews(n: int) -> list[tuple[str, str]]:
    good, bad = ["great", "wonderful", "superb", "moving"], ["awful", "boring", "dull", "terrible"]
    return [(f"a {good[i % 4]} and {good[(i + 1) % 4]} film" if i % 2 else f"a {bad[i % 4]}, {bad[(i + 3) % 4]} film",
             "positive" if i % 2 else "negative") for i in range(n)]


def test_own_csv_with_named_columns(tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    data.write_text("id,review,sentiment\n" + "".join(f'{i},"{t}",{y}\n' for i, (t, y) in enumerate(_reviews(50))),
                    encoding="utf-8")
    out = tmp_path / "csv-run"
    assert main(["train", "--data", str(data), "--text-column", "review", "--label-column", "sentiment",
                 "--out", str(out), "--seed", "2", "--num-words", "30", "--maxlen", "10", "--batch-size", "8",
                 "--epochs", "1", "--verbose", "0"]) == 0
    assert "2 classes (negative, positive)" in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["kind"] == "texts" and run["data"]["test_examples"] == 10
    assert run["config"]["model"]["output_units"] == 1  # two classes: the binary sigmoid model is kept
    assert Predictor.from_checkpoint(out).labels == ("negative", "positive")
    # Evaluating on the file itself reads all 50 rows; the recorded columns are used.
    assert main(["evaluate", str(out), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 50


def test_own_folder_of_label_subfolders(tmp_path, capsys):
    root = tmp_path / "texts"
    for i, (text, label) in enumerate(_reviews(40)):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "folder-run"
    assert main(["train", "--data", str(root), "--out", str(out), "--seed", "2", "--num-words", "30", "--maxlen", "10",
                 "--batch-size", "8", "--epochs", "1", "--verbose", "0"]) == 0
    assert "32 train / 8 test examples, 2 classes (negative, positive)" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 8
    assert result["metrics"] == pytest.approx(json.loads((out / "run.json").read_text())["test_metrics"], abs=1e-6)


def test_summary_and_evaluate_of_a_plain_model_save(tmp_path, tiny_imdb_archive, capsys):
    from lstmtext.config import ModelConfig, build_model

    model = build_model(ModelConfig(vocab_size=50, embedding_dim=4, lstm_sizes=(3,)), maxlen=12)
    model.save(tmp_path / "plain")  # no vocab.json, no training config
    assert main(["summary", str(tmp_path / "plain")]) == 0
    printed = capsys.readouterr().out
    assert "Total params: 300" in printed and "no vocab.json" in printed  # 50*4 + 4*3*(4+3+1) + (3+1)
    assert main(["evaluate", str(tmp_path / "plain")]) == 1
    assert "no training config recorded, so the run's test split is unknown; pass --data" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "plain"), "--data", str(tiny_imdb_archive)]) == 1
    assert "vocab.json: missing, so the raw texts of" in capsys.readouterr().err


def test_resume_after_a_crash_between_the_renames_of_a_save(trained_tiny, tmp_path):
    import os
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained_tiny, out)
    os.rename(out, tmp_path / ".run.x1.old")  # the previous checkpoint moved aside, the new one not yet in place
    with pytest.warns(CheckpointWarning, match="the previous checkpoint was put back"):
        assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--verbose", "0"]) == 0
    assert len(json.loads((out / "run.json").read_text())["metrics"]["loss"]) == 2
