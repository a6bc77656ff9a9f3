"""The tokenizer rule, the Vocab ranking, and a Tokenizer that gives exactly load_data's ids for raw text."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmtext.data.archive import read_archive
from lstmtext.datasets import imdb
from lstmtext.errors import ConfigError, DataError
from lstmtext.kernels import build
from lstmtext.text import TOKENIZER_VERSION, Tokenizer, Vocab, tokenize
from lstmtext.text.tokenizer import normalize_bytes

_REFERENCE_WORD = re.compile(r"[a-z']+")


def reference_tokenize(text: str) -> list[str]:
    """The rule as the Keras-format IMDB arrays were built with it (the textbook implementation)."""
    text = text.lower().replace("<br />", " ")
    return [w for w in (w.strip("'") for w in _REFERENCE_WORD.findall(text)) if w]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Don't <br />watch 'Cats' (2019)!", ["don't", "watch", "cats"]),
        ("A<br /><br />B", ["a", "b"]),
        ("<BR />x", ["x"]),
        ("''' o''clock rock'n'roll '", ["o''clock", "rock'n'roll"]),
        ("Café naïve über", ["caf", "na", "ve", "ber"]),
        ("10/10, A+ -- well-made", ["a", "well", "made"]),
        ("", []),
        ("x  y z''w", ["x", "y", "z''w"]),  # long edge runs
    ],
)
def test_rule_examples(text, words):
    assert tokenize(text) == words == reference_tokenize(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abzAZ' <br/>!.-9éİK\u212a\n\t")), max_size=60) | st.text(max_size=40))
def test_rule_equals_the_reference_on_random_text(text):
    assert tokenize(text) == reference_tokenize(text)


def test_rule_equals_the_reference_on_reviews(tiny_imdb_archive):
    for text in read_archive(tiny_imdb_archive)["train"].texts:
        assert tokenize(text) == reference_tokenize(text)


def test_vocab_ranks_by_frequency_then_first_occurrence():
    vocab = Vocab.build([["b", "a", "c"], ["c", "a", "d"], ["d"]])
    # a, c, d occur twice: the order of first appearance (a before c before d) breaks the tie.
    assert vocab.word_index == {"a": 1, "c": 2, "d": 3, "b": 4}
    assert vocab.counts.tolist() == [2, 2, 2, 1]
    assert vocab.encode(["d", "unseen"]) == [3, 5]


def test_vocab_json_round_trip_and_keras_word_index(tmp_path):
    vocab = Vocab.build([["x", "y", "y"]])
    vocab.save(tmp_path / "vocab.json")
    again = Vocab.load(tmp_path / "vocab.json")
    assert again == vocab and again.counts.tolist() == [2, 1]
    (tmp_path / "keras.json").write_text(json.dumps({"y": 1, "x": 2}))
    assert Vocab.load(tmp_path / "keras.json") == vocab


@pytest.mark.parametrize(
    ("word_index", "message"),
    [
        ({"a": 1, "b": 1}, "rank 1 is given to both 'a' and 'b'"),
        ({"a": 1, "b": 3}, r"rank of 'b' is 3, expected an integer in 1\.\.2"),
        ({"a": "1"}, r"rank of 'a' is '1'"),
    ],
)
def test_bad_word_index_is_refused(word_index, message):
    with pytest.raises(DataError, match=message):
        Vocab.from_word_index(word_index)


@pytest.fixture(params=["python", "compiled"])
def word_lookup(request, monkeypatch):
    """Run a test with the Python word lookups and with the compiled ones (``kernels/text_cpu.cpp``)."""
    if request.param == "compiled":
        if build.load_ops() is None:
            pytest.skip("the compiled kernel is not available here")
    else:
        monkeypatch.setattr(build, "loaded_ops", lambda: None)
    return request.param


_WORDS = st.text(alphabet="abk'\u00e9", min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(alphabet="abk' \n\t<br/>\u00e9\u212a.", max_size=40), max_size=6),
       words=st.lists(_WORDS, unique=True, max_size=12))
def test_compiled_word_lookups_equal_python(texts, words):
    # Unknown words, empty texts, only-empty batches, apostrophes, non-ASCII vocabulary words (never matched).
    if build.load_ops() is None:
        pytest.skip("the compiled kernel is not available here")
    vocab = Vocab(words)
    normalized = [normalize_bytes(t) for t in texts]
    got_flat, got_offsets = vocab.encode_normalized(normalized, build.load_ops())
    assert vocab._native is not None or not any(normalized)  # the compiled path did run
    want_flat, want_offsets = vocab.encode_token_lists([t.split() for t in normalized])
    assert got_flat.dtype == want_flat.dtype and got_offsets.dtype == want_offsets.dtype
    np.testing.assert_array_equal(got_flat, want_flat)
    np.testing.assert_array_equal(got_offsets, want_offsets)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" ")), min_size=1, max_size=6),
       words=st.lists(st.binary(min_size=1, max_size=3), unique=True, max_size=12))
def test_compiled_word_lookups_split_like_bytes_split(texts, words):
    # Any bytes (not only normalized text): the words are what bytes.split() gives (every ASCII whitespace).
    if build.load_ops() is None:
        pytest.skip("the compiled kernel is not available here")
    vocab = Vocab([w.decode("latin-1") for w in words])
    got = vocab.encode_normalized(texts, build.load_ops())
    want = vocab.encode_token_lists([t.split() for t in texts])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    # A text holding a newline takes the Python path.
    with_newline = vocab.encode_normalized([b"a\nb", b"c"], build.load_ops())
    np.testing.assert_array_equal(with_newline[1], [0, 2, 3])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_words": 30},
        {"num_words": 40, "skip_top": 5},
        {"oov_char": None, "num_words": 30},
        {"start_char": None, "index_from": 0},
        {"num_words": 25, "skip_top": 3, "oov_char": None, "start_char": 7, "index_from": 5},
    ],
)
def test_tokenizer_gives_load_data_ids_for_raw_text(tiny_imdb_archive, options, word_lookup):
    """Raw review text through the Tokenizer == the same review from load_data (train and unseen test words)."""
    raw = read_archive(tiny_imdb_archive)
    (x_train, _), (x_test, _) = imdb.load_data(tiny_imdb_archive, **options)
    tokenizer = imdb.get_tokenizer(tiny_imdb_archive, **options)
    rng = np.random.RandomState(113)  # load_data's shuffle, to line the raw texts up with its output
    for split, x in (("train", x_train), ("test", x_test)):
        order = np.arange(len(x))
        rng.shuffle(order)
        texts = [raw[split].texts[i] for i in order]
        assert tokenizer.texts_to_sequences(texts) == [list(s) for s in x]
        ids, offsets = tokenizer.texts_to_flat(texts, ops=build.load_ops() if word_lookup == "compiled" else None)
        assert [ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])] == [list(s) for s in x]


def test_tokenizer_json_round_trip(tmp_path, tiny_imdb_archive):
    tokenizer = imdb.get_tokenizer(tiny_imdb_archive, num_words=30, oov_char=None)
    tokenizer.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again == tokenizer
    texts = ["What a wonderful, moving film!", "Boring. <br />The worst plot ever", ""]
    assert again.texts_to_sequences(texts) == tokenizer.texts_to_sequences(texts)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["tokenizer_version"] == TOKENIZER_VERSION
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_tokenizer_decodes_ids_back_to_words(word_lookup):
    tok = Tokenizer({"the": 1, "movie": 2, "great": 3}, num_words=7)
    ids = tok.texts_to_sequences(["The movie was great!"])
    assert ids == [[1, 4, 5, 2, 6]]
    assert tok.sequences_to_texts(ids) == ["the movie great"]


def test_tokenizer_errors_name_the_problem(tmp_path):
    tok = Tokenizer({"a": 1})
    with pytest.raises(DataError, match="expected a list of strings, got a single string"):
        tok.texts_to_sequences("a review")
    with pytest.raises(DataError, match="item 1 is int, expected str"):
        tok.texts_to_sequences(["ok", 3])
    with pytest.raises(ConfigError, match="num_words must be a positive integer or None, got 0"):
        Tokenizer({"a": 1}, num_words=0)
    with pytest.raises(ConfigError, match=r"skip_top must be a non-negative integer below 2\*\*31, got -1"):
        Tokenizer({"a": 1}, skip_top=-1)
    with pytest.raises(DataError, match=r"tokenizer file '.*missing\.json' does not exist"):
        Tokenizer.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "lstmtext.tokenizer", "tokenizer_version": 99}))
    with pytest.raises(DataError, match="tokenizer_version 99 is not supported"):
        Tokenizer.load(tmp_path / "other.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"'.*bad\.json' is not readable JSON"):
        Tokenizer.load(tmp_path / "bad.json")


def test_unknown_fields_in_saved_tokenizers_and_vocabularies_are_refused(tmp_path):
    """A field this version does not know (a typo, a newer writer) is named, not silently ignored."""
    tok = Tokenizer({"good": 2, "bad": 1}, num_words=10)
    record = tok.to_json_dict()
    (tmp_path / "tok.json").write_text(json.dumps({**record, "lowercase": False}))
    with pytest.raises(DataError, match=r"tok\.json'.*unknown field\(s\) \['lowercase'\]"):
        Tokenizer.load(tmp_path / "tok.json")
    (tmp_path / "nested.json").write_text(json.dumps({**record, "vocab": {**record["vocab"], "extra": 1}}))
    with pytest.raises(DataError, match=r"nested\.json'.*unknown field\(s\) \['extra'\]"):
        Tokenizer.load(tmp_path / "nested.json")
    (tmp_path / "vocab.json").write_text(json.dumps({**record["vocab"], "version": 2}))
    with pytest.raises(DataError, match=r'vocab\.json.*"version" 2 is not supported'):
        Vocab.load(tmp_path / "vocab.json")
    (tmp_path / "ok.json").write_text(json.dumps(record))
    assert Tokenizer.load(tmp_path / "ok.json") == tok
