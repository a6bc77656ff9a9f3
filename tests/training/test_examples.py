"""The two example scripts run end to end on a tiny generated aclImdb-shaped archive."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import make_tiny_imdb_archive

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_tiny_imdb_archive(tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz", n_per_class=40, seed=0)


def test_keras_tutorial_example_prints_summary_and_test_accuracy(archive, capsys):
    result = _load("keras_imdb_tutorial").run(str(archive), seed=1, epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert "Total params: 76,051 (297.07 KB)" in out
    assert "Training configuration:" in out and "Test results - Loss: " in out
    assert 0.0 <= result["test_accuracy"] <= 1.0


def test_stacked_example_runs_with_small_sizes(archive, capsys):
    module = _load("stacked_lstm")
    result = module.run(str(archive), seed=1, epochs=1, lstm_sizes=(8, 4), verbose=0)
    out = capsys.readouterr().out
    assert out.count(" (LSTM) ") == 2 and "Test results - Loss: " in out
    assert 0.0 <= result["test_accuracy"] <= 1.0
    plain = module.plain_sequential()
    assert plain.count_params() == 6_269_121
