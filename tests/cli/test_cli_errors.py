"""The command line's help and its failures: each a clear message and a non-zero exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstmtext.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m lstmtext ...`` in a fresh process (what a user and ``torchrun -m lstmtext`` run)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "400"}  # argparse wraps help to the terminal width: one line per option here
    return subprocess.run([sys.executable, "-m", "lstmtext", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_train_help_comes_from_the_config_dataclasses():
    r = _run("train", "--help")
    assert r.returncode == 0 and r.stderr == ""
    out = " ".join(r.stdout.split())
    assert "usage: lstmtext train" in out
    # Field docstrings of DataConfig / ModelConfig / TrainConfig, with the preset's value.
    assert "--num-words N Vocabulary size: ids of rarer words become the out-of-vocabulary id 2" in out
    assert "--lstm-sizes N [N ...] Units of each LSTM layer, first to last" in out
    assert "--seed N Seed of every random draw" in out and "(keras-imdb: 5000)" in out
    assert "--preset {imdb-pretrained,keras-imdb,stacked-imdb}" in out and "--resume" in out and "--config FILE" in out


@pytest.mark.parametrize("command", ["evaluate", "summary"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert f"usage: lstmtext {command} [-h]" in capsys.readouterr().out


def test_a_bad_flag_exits_2_naming_it():
    r = _run("train", "--epoch", "3", "--no-such-flag")
    assert r.returncode == 2 and r.stdout == ""
    assert "error: unrecognized arguments: --no-such-flag" in r.stderr


def test_a_bad_flag_value_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "three"])
    assert e.value.code == 2
    assert "argument --epochs: invalid int value: 'three'" in capsys.readouterr().err


def test_a_bad_value_exits_1_naming_the_field(capsys):
    assert main(["train", "--lstm-sizes", "16", "0", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "lstmtext train: error: ModelConfig.lstm_sizes[1]: expected a positive integer, got 0" in err
    assert main(["train", "--num-words", "5000", "--vocab-size", "100", "--dry-run"]) == 1
    assert "ModelConfig.vocab_size (100) must be at least DataConfig.num_words (5000)" in capsys.readouterr().err
    assert main(["train", "--resume", "--overwrite", "--dry-run"]) == 1
    assert "resume and overwrite exclude each other" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["evaluate", "summary", "predict"])
def test_a_missing_checkpoint_exits_1(command, tmp_path, capsys):
    folder = tmp_path / "no-such-run"
    args = [command, str(folder)] + (["some text"] if command == "predict" else [])
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lstmtext {command}: error: {folder}: checkpoint folder not found")


def test_a_missing_checkpoint_from_a_subprocess():
    r = _run("evaluate", "no-such-run")
    assert r.returncode == 1 and "lstmtext evaluate: error: no-such-run: checkpoint folder not found" in r.stderr


def test_an_empty_data_file_exits_1(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert main(["train", "--data", str(empty), "--out", str(tmp_path / "out"), "--verbose", "0"]) == 1
    assert f"lstmtext train: error: --data {str(empty)!r}: the file is empty" in capsys.readouterr().err
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n", encoding="utf-8")
    assert main(["train", "--data", str(header_only), "--out", str(tmp_path / "out"), "--verbose", "0"]) == 1
    assert "has 0 examples" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_empty_input_file_for_predict_and_evaluate(trained_tiny, tmp_path, capsys):
    empty = tmp_path / "texts.txt"
    empty.write_bytes(b"")
    assert main(["predict", str(trained_tiny), "--input", str(empty)]) == 1
    assert "no texts in it (the file is empty)" in capsys.readouterr().err
    empty_csv = tmp_path / "e.csv"
    empty_csv.write_text("text,label\n", encoding="utf-8")
    assert main(["evaluate", str(trained_tiny), "--data", str(empty_csv)]) == 1
    assert f"--data {str(empty_csv)!r}: no examples in it" in capsys.readouterr().err


def test_missing_data_and_config_files(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 1
    assert "nope.csv': no such file or folder" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "nope.toml")]) == 1
    assert "--config" in capsys.readouterr().err


def test_resume_without_a_checkpoint(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "fresh"), "--resume", "--verbose", "0"]) == 1
    assert "--resume: no checkpoint in" in capsys.readouterr().err


def test_out_holding_other_files_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["train", "--out", str(out), "--verbose", "0"]) == 1
    assert "holds files that are not part of a checkpoint (mine.txt)" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep me"


def test_resume_of_a_checkpoint_without_training_state(trained_tiny, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_tiny, copy)
    (copy / "trainer.json").unlink(missing_ok=True)
    assert main(["train", "--out", str(copy), "--resume", "--verbose", "0"]) == 1
    assert "has no training state (trainer.json) to continue from" in capsys.readouterr().err


def test_an_unknown_kind_of_data_file(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n", encoding="utf-8")
    assert main(["train", "--data", str(notes), "--out", str(tmp_path / "o"), "--verbose", "0"]) == 1
    assert "notes.txt': unknown kind of file; expected an aclImdb .tar.gz/.tar archive" in capsys.readouterr().err


def test_predict_bf16_is_for_the_torch_backend_and_capable_cpus(trained_tiny, monkeypatch, capsys):
    assert main(["predict", str(trained_tiny), "a film", "--backend", "onnx", "--bf16"]) == 1
    assert "--bf16 is for the torch backend" in capsys.readouterr().err
    monkeypatch.setattr("lstmtext.predictor.bfloat16_supported", lambda: False)
    assert main(["predict", str(trained_tiny), "a film", "--bf16"]) == 1
    assert "bfloat16=True needs a CPU with native bfloat16 matrix products" in capsys.readouterr().err
