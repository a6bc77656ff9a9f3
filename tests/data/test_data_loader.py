"""load_dataset: your own texts from folders, CSV and JSON-lines, binary and multi-class, train-only vocabulary."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from lstmtext.data.loader import load_dataset, read_texts
from lstmtext.datasets import imdb
from lstmtext.errors import ConfigError, DataError
from lstmtext.text import tokenize

TOPICS = {
    "sports": ["goal match team score won league player coach", "the team won the final match"],
    "tech": ["new phone chip software update release", "the software update broke my phone"],
    "food": ["tasty soup recipe bread oven", "the bread recipe needs a hot oven"],
}


def _write_folder(root, rows):
    for i, (text, label) in enumerate(rows):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def _rows(n_each=6):
    return [(f"{TOPICS[label][i % 2]} {i}", label) for label in TOPICS for i in range(n_each)]


def test_multiclass_folder_with_separate_test_folder(tmp_path):
    train = _write_folder(tmp_path / "train", _rows())
    test = _write_folder(tmp_path / "test", [("the team scored a late goal", "sports"), ("zebra soup", "food")])
    ds = load_dataset(train, test)
    assert ds.class_names == ["food", "sports", "tech"] and ds.num_classes == 3
    assert len(ds.x_train) == 18 and len(ds.x_test) == 2
    assert sorted(ds.y_test.tolist()) == [0, 1] and ds.y_train.dtype == np.int64
    # "zebra", "scored" and "late" are test-only words: not in the vocabulary (train only) -> oov_char.
    assert "zebra" not in ds.tokenizer.vocab and "soup" in ds.tokenizer.vocab
    assert sorted(ds.tokenizer.texts_to_sequences(["zebra soup"])[0]) == sorted(
        next(list(x) for x, y in zip(ds.x_test, ds.y_test) if y == 0)
    )


def test_aclimdb_layout_folder_gives_both_splits(tiny_imdb_folder):
    ds = load_dataset(tiny_imdb_folder, num_words=50)
    assert ds.class_names == ["neg", "pos"]  # train/unsup is skipped
    assert len(ds.x_train) == len(ds.x_test) == 40 and ds.y_train.sum() == 20
    assert max(max(s) for s in ds.x_train) < 50
    # Same vocabulary as imdb.load_data (same reviews, same rule); only tie-breaks can differ by file order.
    assert set(ds.tokenizer.vocab.words) == set(imdb.get_word_index(tiny_imdb_folder))


def test_csv_binary_string_labels_and_held_out_split(tmp_path):
    path = tmp_path / "reviews.csv"
    # Each row ends with its own word ("tag" + the number spelled in letters: digits are not words).
    tags = ["tag" + "".join(chr(97 + int(d)) for d in str(i)) for i in range(50)]
    texts = [f"a great film, loved it {t}" if i % 2 else f"boring and awful {t}" for i, t in enumerate(tags)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "sentiment"])
        for i, t in enumerate(texts):
            w.writerow([i, t, "positive" if i % 2 else "negative"])
    ds = load_dataset(path, text_column="review", label_column="sentiment", test_split=0.2, seed=1)
    assert ds.class_names == ["negative", "positive"]
    assert len(ds.x_train) == 40 and len(ds.x_test) == 10
    again = load_dataset(path, text_column="review", label_column="sentiment", test_split=0.2, seed=1)
    assert [list(s) for s in again.x_test] == [list(s) for s in ds.x_test]
    # The vocabulary comes from the 40 training rows only: the tags of held-out rows are unknown words.
    train_words = {w for s in ds.x_train for w in ds.tokenizer.sequences_to_texts([s])[0].split()}
    assert set(ds.tokenizer.vocab.words) == train_words
    assert len(set(tags) - train_words) == 10


def test_tokenizer_reproduces_the_arrays(tmp_path):
    rows = [{"text": f"{TOPICS[k][i % 2]} extra{i}", "label": j} for j, k in enumerate(TOPICS) for i in range(5)]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    ds = load_dataset(path, test_split=0.3, num_words=20, skip_top=1, seed=5)
    assert ds.class_names == ["0", "1", "2"]  # integer labels are the class indices
    rng = np.random.RandomState(5)
    held_out = np.zeros(len(rows), dtype=bool)
    held_out[rng.permutation(len(rows))[: round(len(rows) * 0.3)]] = True
    test_texts = [r["text"] for r, h in zip(rows, held_out) if h]
    order = np.arange(len(test_texts))
    rng = np.random.RandomState(5)
    rng.shuffle(np.arange(len(rows) - len(test_texts)))  # load_data shuffles train first, then test
    rng.shuffle(order)
    assert ds.tokenizer.texts_to_sequences([test_texts[i] for i in order]) == [list(s) for s in ds.x_test]


def test_jsonl_bool_labels_and_custom_keys(tmp_path):
    path = tmp_path / "data.ndjson"
    lines = [json.dumps({"body": f"text number {i}", "spam": bool(i % 3)}) for i in range(12)]
    path.write_text("\n".join(lines), encoding="utf-8")
    ds = load_dataset(path, text_column="body", label_column="spam", test_split=0.25)
    assert ds.class_names == ["0", "1"] and len(ds.x_test) == 3


def test_read_texts_keeps_file_order_and_text(tmp_path):
    raw = read_texts(_write_folder(tmp_path / "d", [("Hello <br />World", "b"), ("x", "a"), ("y", "b")]))
    assert raw.labels == ["a", "b", "b"] and raw.texts[1] == "Hello <br />World"
    assert tokenize(raw.texts[1]) == ["hello", "world"]


def test_csv_without_the_named_column_is_a_clear_error(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("review,label\nnice,1\nbad,0\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"CSV file '.*data\.csv' has no text column 'text'; its columns are \['review', 'label'\]"
    ):
        load_dataset(path)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ('{"text": "a"}\n', "x.jsonl", r"line 1, has no label column 'label'"),
        ('{"text": 1, "label": 0}\n', "x.jsonl", r"line 1: 'text' must be a string"),
        ("[1, 2]\n", "x.jsonl", r"line 1: expected a JSON object, got list"),
        ("{oops\n", "x.jsonl", r"line 1: not JSON"),
        ("text,label\na,1\nb,1\n", "x.csv", r"only one label \(1\) in the data; a classifier needs at least 2"),
        ("text,label\na,1\nb,\n", "x.csv", r"line 3: missing 'text' or 'label'"),
        ("whatever", "x.parquet", r"unknown format '\.parquet'; expected \.csv, \.tsv or \.jsonl"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_dataset(path, test_path=path)


def test_bad_paths_and_options(tmp_path):
    with pytest.raises(DataError, match=r"'.*nowhere' does not exist; expected a folder of <label>/\*\.txt files"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no <label>/\\*\\.txt files"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(ConfigError, match="load_dataset: num_words must be an integer >= 1 or None, got 0"):
        load_dataset(tmp_path, num_words=0)
    with pytest.raises(ConfigError, match="test_split must be a number between 0 and 1"):
        load_dataset(tmp_path, test_split=1.5)
    bad = tmp_path / "latin" / "a"
    bad.mkdir(parents=True)
    (bad / "0.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match=r"text file '.*0\.txt' is not UTF-8"):
        load_dataset(tmp_path / "latin")
