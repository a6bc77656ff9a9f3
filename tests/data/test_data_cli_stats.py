"""`lstmtext stats`: the figures it prints, JSON output, errors, and `python -m lstmtext`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstmtext.cli import build_parser, main
from lstmtext.datasets import imdb

SRC = Path(__file__).resolve().parents[2] / "src"


def test_stats_prints_the_dataset_figures(tiny_imdb_archive, capsys):
    assert main(["stats", "--data", str(tiny_imdb_archive)]) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0].strip(): line.split() for line in out.splitlines()}
    assert lines["reviews"][-2:] == ["40", "40"]
    assert lines["% positive"][-4:] == ["50.0", "%", "50.0", "%"]
    vocab_size = len(imdb.get_word_index(tiny_imdb_archive))
    assert f"vocabulary: {vocab_size:,} words (training split)" in out
    assert out.splitlines()[-1].startswith("time: ") and out.splitlines()[-1].endswith(" s")


def test_stats_json_matches_load_data(tiny_imdb_archive, capsys):
    assert main(["stats", "--data", str(tiny_imdb_archive), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    (x_train, y_train), (x_test, _) = imdb.load_data(tiny_imdb_archive)
    assert stats["train"]["examples"] == len(x_train) and stats["train"]["class_counts"] == [20, 20]
    assert stats["train"]["tokens"] == sum(len(s) - 1 for s in x_train)  # minus the start char
    assert stats["test"]["max_length"] == max(len(s) - 1 for s in x_test)
    assert stats["class_names"] == ["neg", "pos"] and stats["seconds"] >= 0


def test_stats_on_a_csv_with_named_columns(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text(
        "body,tag\n" + "".join(f"text {'abc'[i % 3]},{'xyz'[i % 3]}\n" for i in range(30)), encoding="utf-8"
    )
    assert main(["stats", "--data", str(path), "--text-column", "body", "--label-column", "tag", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["kind"] == "CSV file" and stats["class_names"] == ["x", "y", "z"]
    assert stats["train"]["examples"] + stats["test"]["examples"] == 30


def test_stats_errors_exit_1_with_the_message(tmp_path, capsys):
    assert main(["stats", "--data", str(tmp_path / "missing.tar.gz")]) == 1
    err = capsys.readouterr().err
    assert "lstmtext stats: error:" in err and "missing.tar.gz' does not exist" in err
    path = tmp_path / "d.csv"
    path.write_text("review,label\na,1\n", encoding="utf-8")
    assert main(["stats", "--data", str(path)]) == 1
    assert "has no text column 'text'" in capsys.readouterr().err


def test_parser_has_subcommands_and_help():
    parser = build_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args([])  # a sub-command is required
    assert info.value.code == 2
    assert build_parser().parse_args(["stats"]).data is None


def test_python_dash_m_runs_the_cli(tiny_imdb_archive, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "LSTMTEXT_CACHE_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "lstmtext", "stats", "--data", str(tiny_imdb_archive)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "reviews" in run.stdout and "% positive" in run.stdout
    help_run = subprocess.run(
        [sys.executable, "-m", "lstmtext", "stats", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert "--data PATH" in help_run.stdout


def test_stats_works_without_the_optional_extras(tiny_imdb_archive, monkeypatch, capsys):
    """`pip install -e .` has no fastapi: the CLI must still build its parser and run `stats`."""
    for name in [m for m in sys.modules if m == "lstmtext.service" or m.startswith("lstmtext.service.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # makes `import fastapi` raise ImportError
    assert main(["stats", "--data", str(tiny_imdb_archive)]) == 0
    assert "% positive" in capsys.readouterr().out
    assert main(["serve", "some-checkpoint"]) == 1
    assert "pip install 'lstmtext[serve]'" in capsys.readouterr().err
