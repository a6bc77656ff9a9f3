"""Run configs: preset < TOML file < flags, field by field; bad files name the problem."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from lstmtext.cli import main
from lstmtext.errors import ConfigError
from lstmtext.run.config import resolve_run_config

from .conftest import FAST

TOML = """
preset = "stacked-imdb"
name = "my-run"

[data]
maxlen = 120
num_words = 3000

[model]
lstm_sizes = [32, 16]
dropout = 0.25

[train]
epochs = 4
seed = 11

[run]
verbose = 2
"""


def test_preset_then_file_then_flags(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(TOML, encoding="utf-8")
    assert main(["train", "--config", str(path), "--epochs", "2", "--lstm-sizes", "8", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert 'name = "my-run"' in printed
    assert "embedding_dim = 300" in printed  # from the file's preset, stacked-imdb
    assert "batch_size = 256" in printed  # ditto
    assert "maxlen = 120" in printed and "dropout = 0.25" in printed and "seed = 11" in printed  # from the file
    assert "vocab_size = 3000" in printed  # follows the file's num_words
    assert "epochs = 2" in printed and "lstm_sizes = [8]" in printed  # flags win over the file
    assert "verbose = 2" in printed and 'out = "runs/my-run"' not in printed  # out not set: printed as a comment
    # --preset on the command line wins over the file's preset.
    assert main(["train", "--config", str(path), "--preset", "keras-imdb", "--dry-run"]) == 0
    assert "embedding_dim = 15" in capsys.readouterr().out


def test_printed_config_is_a_valid_config_file(tmp_path, capsys):
    assert main(["train", "--preset", "stacked-imdb", "--seed", "3", "--out", "runs/x", "--dry-run"]) == 0
    path = tmp_path / "printed.toml"
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    cfg = resolve_run_config(config_file=path)
    assert cfg.to_dict() == resolve_run_config("stacked-imdb", overrides={
        "train": {"seed": 3}, "run": {"out": "runs/x"}}).to_dict()


def test_training_from_a_toml_file(tiny_imdb_archive, tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    out = tmp_path / "out"
    path.write_text(f"""
[data]
archive = "{tiny_imdb_archive.as_posix()}"
num_words = 150
maxlen = 30

[model]
embedding_dim = 6
lstm_sizes = [4]

[train]
batch_size = 16
epochs = 1
seed = 4

[run]
out = "{out.as_posix()}"
verbose = 0
""", encoding="utf-8")
    assert main(["train", "--config", str(path)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["model"]["embedding_dim"] == 6 and run["config"]["data"]["maxlen"] == 30
    assert run["config"]["model"]["vocab_size"] == 150 and run["seed"] == 4
    capsys.readouterr()
    assert main(["summary", str(out)]) == 0
    assert "Total params: 1,081" in capsys.readouterr().out  # 150*6 + 4*4*(6+4+1) + (4+1)


@pytest.mark.parametrize(("text", "message"), [
    ("[data]\nnum_word = 3\n", "[data] has unknown field(s) ['num_word']"),
    ("[optimizer]\nname = 'adam'\n", "unknown key(s) ['optimizer']"),
    ("[train]\nepochs = 0\n", "TrainConfig.epochs: expected a positive integer, got 0"),
    ("[train]\nepochs = 'five'\n", "TrainConfig.epochs: expected a positive integer, got 'five'"),
    ("[model\n", "not valid TOML"),
    ("preset = 'keras'\n", "unknown preset 'keras'"),
    ("data = 3\n", "[data] must be a table"),
])
def test_bad_config_files_name_the_problem(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=None) as e:
        resolve_run_config(config_file=path)
    assert message in str(e.value)
    assert main(["train", "--config", str(path), "--dry-run"]) == 1
    assert message in capsys.readouterr().err


def test_resume_starts_from_the_recorded_config(trained_tiny, capsys):
    # The run was trained with --maxlen 40 --num-words 200 --seed 7 (not the preset's values).
    assert main(["train", "--out", str(trained_tiny), "--resume", "--epochs", "3", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "maxlen = 40" in printed and "num_words = 200" in printed and "seed = 7" in printed
    assert "epochs = 3" in printed and "resume = true" in printed


def test_flags_are_generated_for_every_config_field(capsys):
    assert main(["train", "--mask-zero", "--no-shuffle", "--metrics", "accuracy", "auc", "--padding", "post",
                 "--learning-rate", "0.01", "--optimizer", "rmsprop", *FAST[:2], "--dry-run"]) == 0
    printed = capsys.readouterr().out
    for line in ("mask_zero = true", "shuffle = false", 'metrics = ["accuracy", "auc"]', 'padding = "post"',
                 "learning_rate = 0.01", 'optimizer = "rmsprop"', "num_words = 200"):
        assert line in printed


def test_the_readme_config_example_is_valid(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md has a ```toml example"
    path = tmp_path / "example.toml"
    path.write_text(textwrap.dedent(blocks[0]), encoding="utf-8")
    cfg = resolve_run_config(config_file=path)
    assert cfg.experiment.name == "stacked-imdb" and cfg.experiment.model.lstm_sizes == (64, 32)
    assert cfg.experiment.data.text_column == "review" and str(cfg.out) == "runs/reviews"
