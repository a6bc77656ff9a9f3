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


def test_functional_bilstm_example_runs_small(archive, capsys, monkeypatch):
    # keras.io's "Bidirectional LSTM on IMDB" with only the imports changed, at small sizes.
    monkeypatch.setenv("LSTMTEXT_IMDB_ARCHIVE", str(archive))
    model, history = _load("functional_bilstm_imdb").main(max_features=200, maxlen=20, embedding_dim=8, units=4,
                                                           batch_size=16, epochs=1, verbose=0)
    out = capsys.readouterr().out
    assert 'Model: "functional' in out and "bidirectional_1 (Bidirectional)" in out
    assert "80 Training sequences" in out and "80 Validation sequences" in out
    assert type(model).__name__ == "Functional" and set(history.history) == {
        "loss", "accuracy", "val_loss", "val_accuracy"}
    assert model.count_params() == 200 * 8 + 2 * 4 * 4 * (8 + 4 + 1) + 2 * 4 * 4 * (8 + 4 + 1) + 9
