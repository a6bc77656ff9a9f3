"""One data entry: a `train` run resolves and checksums its IMDB source once; one "is this IMDB?" rule."""

from __future__ import annotations

import numpy as np

from lstmtext.config import DataConfig
from lstmtext.data import imdb, stats
from lstmtext.run import data as run_data


def test_load_run_data_reads_the_archive_once(tiny_imdb_archive, monkeypatch):
    calls = []
    real = imdb.sha256_file
    monkeypatch.setattr(imdb, "sha256_file", lambda p: calls.append(p) or real(p))
    got = run_data.load_run_data(DataConfig(archive=str(tiny_imdb_archive), num_words=100, maxlen=50))
    assert len(calls) == 1
    # Same arrays and tokenizer as the two separate Keras-style calls.
    (x_train, y_train), _ = imdb.load_data(tiny_imdb_archive, num_words=100)
    tok = imdb.get_tokenizer(tiny_imdb_archive, num_words=100)
    np.testing.assert_array_equal(got.y_train, y_train)
    np.testing.assert_array_equal(got.x_train, run_data.pad(x_train, DataConfig(num_words=100, maxlen=50)))
    assert got.tokenizer == tok


def test_one_rule_decides_what_is_imdb(tiny_imdb_archive, tiny_imdb_folder, tmp_path):
    assert run_data.is_imdb_source is imdb.is_imdb_source and stats.is_imdb_source is imdb.is_imdb_source
    (tmp_path / "d.csv").write_text("text,label\na,1\n")
    assert [imdb.is_imdb_source(p) for p in (None, tiny_imdb_archive, tiny_imdb_folder, tmp_path / "d.csv")] == [
        True, True, True, False]


def test_labelled_splits_of_own_data_give_the_words(tmp_path):
    rows = ["text,label"] + [f"good movie {i},pos" if i % 2 else f"bad film {i},neg" for i in range(20)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    got = run_data.read_labelled_splits(DataConfig(archive=str(tmp_path / "d.csv"), test_split=0.25))
    assert len(got.train_texts) == 15 and len(got.test_texts) == 5 and got.class_names == ["neg", "pos"]
    assert all(t in ("good movie", "bad film") for t in got.train_texts)  # digits are not words
    assert set(got.y_train.tolist()) == {0, 1}
