"""text_dataset_from_directory: Keras's file listing, seeded shuffle and split; batches, labels, errors.

Two references: the golden file (Keras's function run on TensorFlow over a generated tree, by
tests/golden/make_text_golden.py) and Keras's own TensorFlow-free listing code (``dataset_utils``), run here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from text_samples import golden

from lstmtext.errors import ConfigError, DataError
from lstmtext.layers import TextVectorization
from lstmtext.utils import text_dataset_from_directory

DIRECTORY = golden()["text_dataset_from_directory"]


@pytest.fixture(scope="module")
def golden_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("golden-tree") / "data"
    for rel in DIRECTORY["tree"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel, encoding="utf-8")
    return root


def samples(ds) -> list[list]:
    return [[text, None if label is None else int(label)] for text, label in
            ((item if isinstance(item, tuple) else (item, None)) for item in ds)]


@pytest.mark.parametrize("case", DIRECTORY["cases"], ids=[c["name"] for c in DIRECTORY["cases"]])
def test_same_files_in_each_subset_as_keras(case, golden_tree):
    result = text_dataset_from_directory(golden_tree, batch_size=None, verbose=False, **case["kwargs"])
    datasets = result if isinstance(result, tuple) else (result,)
    assert len(datasets) == len(case["subsets"])
    for ds, want in zip(datasets, case["subsets"]):
        assert ds.class_names == want["class_names"]
        got = samples(ds)
        if case["kwargs"].get("shuffle", True) is False:
            assert got == want["items"]  # no shuffle: Keras's sorted order exactly
        else:
            assert sorted(got) == sorted(want["items"])


def test_listing_and_split_equal_keras_dataset_utils(tiny_imdb_folder):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    dataset_utils = pytest.importorskip("keras.src.utils.dataset_utils")
    from lstmtext.utils.text_dataset import index_directory

    train = str(tiny_imdb_folder / "train")
    for seed, split in ((1337, 0.2), (42, 0.35), (0, 0.5)):
        want_paths, want_labels, want_names = dataset_utils.index_directory(
            train, "inferred", formats=(".txt",), shuffle=True, seed=seed, verbose=False)
        paths, labels, names = index_directory(train, "inferred", shuffle=True, seed=seed)
        assert (paths, labels.tolist(), names) == (want_paths, list(want_labels), want_names)
        for subset in ("training", "validation"):
            want = dataset_utils.get_training_or_validation_split(want_paths, want_labels, split, subset)
            ds = text_dataset_from_directory(train, seed=seed, validation_split=split, subset=subset, verbose=False)
            assert ds.file_paths == want[0] and ds.labels.tolist() == list(want[1])


def test_batches_label_modes_and_adapt(tiny_imdb_folder, capsys):
    train = tiny_imdb_folder / "train"
    ds = text_dataset_from_directory(train, batch_size=16, seed=1, class_names=["neg", "pos"])
    assert "Found 40 files belonging to 2 classes." in capsys.readouterr().out
    batches = list(ds)
    assert len(batches) == len(ds) == 3 and [len(b[0]) for b in batches] == [16, 16, 8]
    texts, labels = batches[0]
    assert texts.dtype == object and isinstance(texts[0], str) and labels.dtype == np.int32
    assert sorted(t for b in batches for t in b[0]) == sorted(t for b in ds for t in b[0])  # reshuffled epochs
    binary = next(iter(text_dataset_from_directory(train, label_mode="binary", class_names=["neg", "pos"],
                                                   seed=1, verbose=False)))[1]
    assert binary.dtype == np.float32 and binary.shape[1:] == (1,)
    cat = next(iter(text_dataset_from_directory(train, label_mode="categorical", class_names=["neg", "pos"],
                                                seed=1, verbose=False)))[1]
    assert cat.shape[1:] == (2,) and np.all(cat.sum(axis=1) == 1)
    layer = TextVectorization(max_tokens=100)
    layer.adapt(ds)
    also = TextVectorization(max_tokens=100)
    also.adapt(ds.map(lambda x, y: x))
    direct = TextVectorization(max_tokens=100)
    direct.adapt([t for b in ds for t in b[0]])
    assert layer.get_vocabulary() == also.get_vocabulary() == direct.get_vocabulary()
    assert layer(texts).shape[0] == 16
    assert len(list(ds.take(2))) == 2 and len(ds.cache().prefetch(2)) == 3


def test_max_length_counts_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("héllo wörld", encoding="utf-8")
    ds = text_dataset_from_directory(tmp_path, max_length=2, batch_size=None, shuffle=False, verbose=False)
    assert [t for t, _ in ds] == ["h"]  # "h" + half of "é": the cut character is dropped
    ds = text_dataset_from_directory(tmp_path, max_length=3, label_mode=None, batch_size=None, verbose=False,
                                     seed=0)
    assert list(ds) == ["hé"]


def test_clear_errors(tmp_path, tiny_imdb_folder):
    train = tiny_imdb_folder / "train"
    with pytest.raises(ConfigError, match="must provide a `seed`"):
        text_dataset_from_directory(train, validation_split=0.2, subset="training")
    with pytest.raises(ConfigError, match="validation_split` must be set"):
        text_dataset_from_directory(train, subset="training", seed=1)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        text_dataset_from_directory(train, validation_split=1.5, subset="training", seed=1)
    with pytest.raises(ConfigError, match="label_mode"):
        text_dataset_from_directory(train, label_mode="sparse")
    with pytest.raises(ConfigError, match="exactly 2 class_names"):
        text_dataset_from_directory(train, label_mode="binary", verbose=False)  # pos, neg, unsup
    with pytest.raises(ConfigError, match="did not match the names of the subdirectories"):
        text_dataset_from_directory(train, class_names=["pos", "nope"])
    with pytest.raises(ConfigError, match="lengths of `labels`"):
        text_dataset_from_directory(train, labels=[0, 1], verbose=False)
    with pytest.raises(DataError, match="not a directory"):
        text_dataset_from_directory(tmp_path / "missing")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="No text files found"):
        text_dataset_from_directory(tmp_path / "empty", verbose=False)
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DataError, match="is not UTF-8 text"):
        list(text_dataset_from_directory(tmp_path / "bad", verbose=False))
