"""lstmtext.datasets.imdb: the Keras numbers (checked against real Keras and the reference build script),
all sources, the cache, and clear errors on bad input."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers import make_tiny_imdb_archive, shared_dir, write_keras_imdb_npz

import lstmtext.data.imdb as imdb_module
from lstmtext.data.imdb import load_corpus
from lstmtext.datasets import imdb
from lstmtext.errors import ConfigError, DataError

PEER_SCRIPT = shared_dir() / "peers" / "build_imdb_keras.py"

# Argument combinations compared with Keras (tiny reviews have 10-80 tokens, vocabulary ~100 words).
KERAS_CASES = [
    {},
    {"num_words": 30},
    {"num_words": 40, "skip_top": 5},
    {"maxlen": 50},
    {"start_char": None},
    {"oov_char": None, "num_words": 30},
    {"index_from": 0, "start_char": None},
    {"seed": 7, "num_words": 25, "skip_top": 3, "oov_char": None, "maxlen": 60},
    {"skip_top": 2, "start_char": 1},
]


def _peer_module():
    if not PEER_SCRIPT.is_file():
        pytest.skip(f"the reference build script is not available at {PEER_SCRIPT}")
    spec = importlib.util.spec_from_file_location("build_imdb_keras", PEER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def keras_npz(tiny_imdb_archive, tmp_path_factory) -> Path:
    """A Keras-format imdb.npz (object arrays of rank lists, written by numpy) of the tiny archive's ranks."""
    path = tmp_path_factory.mktemp("keras-npz") / "imdb.npz"
    write_keras_imdb_npz(path, load_corpus(tiny_imdb_archive))
    return path


@pytest.fixture(scope="module")
def peer_npz(tiny_imdb_archive, tmp_path_factory) -> Path:
    """Keras-format imdb.npz + imdb_word_index.json built from the tiny archive by the reference script."""
    if not PEER_SCRIPT.is_file():
        pytest.skip(f"the reference build script is not available at {PEER_SCRIPT}")
    out = tmp_path_factory.mktemp("peer")
    subprocess.run(
        [
            sys.executable,
            str(PEER_SCRIPT),
            str(tiny_imdb_archive),
            str(out / "imdb.npz"),
            str(out / "imdb_word_index.json"),
        ],
        check=True,
        capture_output=True,
    )
    return out / "imdb.npz"


def _assert_same(ours, theirs):
    (xa, ya), (xb, yb) = ours
    (xc, yc), (xd, yd) = theirs
    for got, want in ((xa, xc), (xb, xd)):
        assert len(got) == len(want)
        assert [list(s) for s in got] == [list(s) for s in want]
    np.testing.assert_array_equal(ya, yc)
    np.testing.assert_array_equal(yb, yd)


def test_shapes_types_and_labels(tiny_imdb_archive):
    (x_train, y_train), (x_test, y_test) = imdb.load_data(tiny_imdb_archive)
    assert x_train.shape == (40,) and x_test.shape == (40,) and x_train.dtype == object
    assert all(type(s) is list and s[0] == 1 for s in x_train)
    assert y_train.dtype == np.int64 and sorted(np.unique(y_train)) == [0, 1] and y_train.sum() == 20


def test_ranks_and_word_index_equal_the_reference_script(tiny_imdb_archive, peer_npz):
    peer = _peer_module()
    word_index = imdb.get_word_index(tiny_imdb_archive)
    assert word_index == json.loads(peer_npz.with_name("imdb_word_index.json").read_text())
    assert min(word_index.values()) == 1 and max(word_index.values()) == len(word_index)
    for kwargs in ({}, {"num_words": 30, "skip_top": 3}):
        _assert_same(imdb.load_data(tiny_imdb_archive, **kwargs), peer.load_data(str(peer_npz), **kwargs))


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", KERAS_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "defaults")
def test_load_data_equals_real_keras(tiny_imdb_archive, keras_npz, monkeypatch, kwargs):
    """Real keras.datasets.imdb.load_data reads the same ranks (as a Keras-format npz) and must agree."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    keras_imdb = importlib.import_module("keras.src.datasets.imdb")
    # Keras would download its own file (and check its hash); hand it ours instead.
    monkeypatch.setattr(keras_imdb, "get_file", lambda *a, **k: str(keras_npz))
    _assert_same(imdb.load_data(tiny_imdb_archive, **kwargs), keras_imdb.load_data(**kwargs))


@pytest.mark.keras
def test_maxlen_that_keeps_nothing_raises_like_keras(tiny_imdb_archive, keras_npz, monkeypatch):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    keras_imdb = importlib.import_module("keras.src.datasets.imdb")
    monkeypatch.setattr(keras_imdb, "get_file", lambda *a, **k: str(keras_npz))
    with pytest.raises(ValueError, match="no sequence was kept"):
        keras_imdb.load_data(maxlen=3)
    with pytest.raises(ValueError, match=r"maxlen=3, no sequence was kept\. Increase maxlen"):
        imdb.load_data(tiny_imdb_archive, maxlen=3)


def test_folder_and_keras_npz_sources_equal_the_archive(tiny_imdb_archive, tiny_imdb_folder, keras_npz):
    want = imdb.load_data(tiny_imdb_archive, num_words=35)
    _assert_same(imdb.load_data(tiny_imdb_folder, num_words=35), want)
    _assert_same(imdb.load_data(tiny_imdb_folder.parent, num_words=35), want)  # the folder holding aclImdb/
    _assert_same(imdb.load_data(keras_npz, num_words=35), want)
    assert imdb.get_word_index(keras_npz) == imdb.get_word_index(tiny_imdb_archive)
    assert imdb.get_word_index(tiny_imdb_folder) == imdb.get_word_index(tiny_imdb_archive)


def test_env_variable_may_name_a_keras_npz(keras_npz, tiny_imdb_archive, monkeypatch):
    monkeypatch.setenv("LSTMTEXT_IMDB_ARCHIVE", str(keras_npz))
    assert imdb.get_word_index() == imdb.get_word_index(tiny_imdb_archive)
    _assert_same(imdb.load_data(num_words=20), imdb.load_data(tiny_imdb_archive, num_words=20))


def test_env_variable_names_the_default_archive(tiny_imdb_archive, monkeypatch):
    monkeypatch.setenv("LSTMTEXT_IMDB_ARCHIVE", str(tiny_imdb_archive))
    _assert_same(imdb.load_data(), imdb.load_data(tiny_imdb_archive))
    monkeypatch.setenv("LSTMTEXT_IMDB_ARCHIVE", str(tiny_imdb_archive) + ".missing")
    with pytest.raises(DataError, match=r"LSTMTEXT_IMDB_ARCHIVE=.*\.missing' does not exist"):
        imdb.load_data()


def test_second_load_comes_from_the_cache(tiny_imdb_archive, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = imdb.load_data(tiny_imdb_archive, cache_dir=cache)
    (entry,) = (cache / "parsed").iterdir()
    with np.load(entry, allow_pickle=False) as f:  # plain arrays only: no pickle needed to read it back
        assert {"train_ranks", "train_offsets", "test_labels", "words_utf8"} <= set(f.files)

    def no_parsing(path):
        raise AssertionError("the archive was parsed again")

    monkeypatch.setattr(imdb_module, "read_archive", no_parsing)
    _assert_same(imdb.load_data(tiny_imdb_archive, cache_dir=cache), first)
    # A damaged cache entry is rebuilt, not trusted.
    monkeypatch.undo()
    entry.write_bytes(b"not an npz")
    _assert_same(imdb.load_data(tiny_imdb_archive, cache_dir=cache), first)


def test_cache_is_keyed_by_archive_content(tmp_path):
    path = tmp_path / "a.tar.gz"
    make_tiny_imdb_archive(path, n_per_class=6, seed=1)
    a = imdb.load_data(path)
    make_tiny_imdb_archive(path, n_per_class=6, seed=2)  # same name, new content
    b = imdb.load_data(path)
    assert [list(s) for s in a[0][0]] != [list(s) for s in b[0][0]]
    assert len(list((Path(os.environ["LSTMTEXT_CACHE_DIR"]) / "parsed").iterdir())) == 2


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"'.*nope\.tar\.gz' does not exist; expected an aclImdb_v1\.tar\.gz archive"):
        imdb.load_data(tmp_path / "nope.tar.gz")


def test_truncated_archive_is_a_clear_error(tiny_imdb_archive, tmp_path):
    bad = tmp_path / "truncated.tar.gz"
    data = tiny_imdb_archive.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"archive '.*truncated\.tar\.gz' is truncated or corrupt"):
        imdb.load_data(bad)


def test_corrupt_archive_is_a_clear_error(tmp_path):
    bad = tmp_path / "garbage.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 40)
    with pytest.raises(DataError, match=r"'.*garbage\.tar\.gz' is truncated or corrupt"):
        imdb.load_data(bad)


def test_archive_without_train_folder_is_a_clear_error(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name in ("aclImdb/test/pos/0_9.txt", "aclImdb/test/neg/0_1.txt"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tf.addfile(info, io.BytesIO(b"good"))
    path = tmp_path / "no_train.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue()))
    with pytest.raises(DataError, match=r"'.*no_train\.tar\.gz' has no aclImdb/train/pos or aclImdb/train/neg reviews"):
        imdb.load_data(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_words": 0}, r"num_words must be an integer >= 1 or None, got 0"),
        ({"num_words": -5}, r"num_words must be an integer >= 1 or None, got -5"),
        ({"skip_top": 1.5}, r"skip_top must be an integer >= 0, got 1\.5"),
        ({"maxlen": -1}, r"maxlen must be an integer >= 0 or None, got -1"),
        ({"index_from": None}, r"index_from must be an integer >= 0, got None"),
    ],
)
def test_bad_arguments_are_named(tiny_imdb_archive, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        imdb.load_data(tiny_imdb_archive, **kwargs)


def test_word_index_json_is_validated(tmp_path):
    bad = tmp_path / "imdb_word_index.json"
    bad.write_text('["the", "a"]')
    with pytest.raises(DataError, match="must hold a JSON object of word -> integer rank"):
        imdb.get_word_index(bad)
    with pytest.raises(DataError, match="is a word index; load_data expects"):
        imdb.load_data(bad)


@pytest.mark.slow
def test_shared_archive_matches_the_published_figures(shared_imdb_archive, tmp_path):
    # The load times (first <= 15 s, cached <= 2 s) are benchmark figures (bench/bench_data.py), not asserted
    # here: a unit test must not fail because the machine is busy. What is checked: the cache gives the same
    # arrays as the parse.
    (x_train, y_train), (x_test, y_test) = imdb.load_data(shared_imdb_archive, cache_dir=tmp_path)
    (cx_train, cy_train), (cx_test, cy_test) = imdb.load_data(shared_imdb_archive, cache_dir=tmp_path)
    assert all(list(a) == list(b) for a, b in zip(x_train, cx_train)) and (y_test == cy_test).all()
    assert len(x_train) == len(x_test) == 25_000
    assert y_train.mean() == y_test.mean() == 0.5
    word_index = imdb.get_word_index(shared_imdb_archive, cache_dir=tmp_path)
    assert list(word_index)[:4] == ["the", "and", "a", "of"]
    assert len(word_index) == 79_768
