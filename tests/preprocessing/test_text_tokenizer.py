"""lstmtext.preprocessing.text against the keras-preprocessing package (Keras 2's text module), method by method.

Each option set fits both tokenizers on the same reviews (real IMDB reviews when the archive is there, the
suite's generated reviews always) and compares every dictionary, every conversion, every matrix mode and
the to_json text, then round-trips the JSON both ways.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from text_samples import generated_reviews, imdb_sample

from lstmtext.errors import ConfigError, DataError
from lstmtext.preprocessing import text as ours

kp_text = pytest.importorskip("keras_preprocessing.text")

OPTION_SETS = {
    "default": {},
    "num_words_oov": {"num_words": 1000, "oov_token": "<OOV>"},
    "no_lower_no_filters": {"lower": False, "filters": ""},
    "char_level": {"char_level": True, "num_words": 60},
    "custom_split_filters": {"split": ".", "filters": ",!?\t\n", "oov_token": "[unk]", "num_words": 400},
    "small_vocab_oov": {"num_words": 50, "oov_token": "OOV", "lower": False},
    "oov_beyond_vocab": {"num_words": 3, "oov_token": "x"},
}


@pytest.fixture(scope="module")
def imdb_reviews(shared_imdb_archive) -> list[str]:
    texts = imdb_sample(shared_imdb_archive)
    if texts is None:
        pytest.skip("the IMDB archive here holds other reviews than the golden file names")
    return list(texts)


def compare(theirs, mine) -> None:
    assert mine.document_count == theirs.document_count
    assert list(mine.word_counts.items()) == list(theirs.word_counts.items())
    assert dict(mine.word_docs) == dict(theirs.word_docs)
    assert mine.word_index == theirs.word_index
    assert mine.index_word == theirs.index_word
    assert dict(mine.index_docs) == dict(theirs.index_docs)


def check_option_set(options: dict, texts: list[str]) -> None:
    fit, held_out = texts[: len(texts) * 3 // 4], texts[len(texts) * 3 // 4:]
    theirs, mine = kp_text.Tokenizer(**options), ours.Tokenizer(**options)
    theirs.fit_on_texts(fit)
    mine.fit_on_texts(fit)
    compare(theirs, mine)
    assert mine.to_json() == theirs.to_json()
    seqs = theirs.texts_to_sequences(held_out)
    assert mine.texts_to_sequences(held_out) == seqs
    assert mine.sequences_to_texts(seqs) == theirs.sequences_to_texts(seqs)
    assert mine.sequences_to_texts([[0, 1, 2, 10**6]]) == theirs.sequences_to_texts([[0, 1, 2, 10**6]])
    for mode in ours.MATRIX_MODES:
        want = theirs.texts_to_matrix(held_out, mode=mode)
        got = mine.texts_to_matrix(held_out, mode=mode)
        assert got.dtype == want.dtype and np.array_equal(got, want), mode
    # JSON both ways: each package reads the other's, and the rebuilt tokenizers behave the same
    from_theirs = ours.tokenizer_from_json(theirs.to_json())
    from_mine = kp_text.tokenizer_from_json(mine.to_json())
    compare(from_mine, from_theirs)
    assert from_theirs.to_json() == from_mine.to_json() == theirs.to_json()
    assert from_theirs.texts_to_sequences(held_out) == seqs
    np.testing.assert_array_equal(from_theirs.texts_to_matrix(held_out, "tfidf"),
                                  from_mine.texts_to_matrix(held_out, "tfidf"))
    # fitting more after a round trip goes on counting the same way
    theirs.fit_on_texts(held_out[:5])
    from_theirs.fit_on_texts(held_out[:5])
    compare(theirs, from_theirs)


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_tokenizer_matches_keras_preprocessing_on_imdb(name, imdb_reviews):
    check_option_set(OPTION_SETS[name], imdb_reviews)


@pytest.mark.parametrize("name", ["default", "num_words_oov", "char_level", "custom_split_filters"])
def test_tokenizer_matches_keras_preprocessing_on_generated_reviews(name):
    check_option_set(OPTION_SETS[name], generated_reviews())


def test_token_lists_sequences_and_hashing_match():
    docs = [["The", "cat", "sat"], ["the", "dog"], ["A", "cat"]]
    theirs, mine = kp_text.Tokenizer(), ours.Tokenizer()
    theirs.fit_on_texts(docs)
    mine.fit_on_texts(docs)
    compare(theirs, mine)
    assert mine.texts_to_sequences(docs) == theirs.texts_to_sequences(docs)
    seqs = [[1, 2, 2, 9], [3], []]
    theirs, mine = kp_text.Tokenizer(num_words=6), ours.Tokenizer(num_words=6)
    theirs.fit_on_sequences(seqs)
    mine.fit_on_sequences(seqs)
    compare(theirs, mine)
    for mode in ours.MATRIX_MODES:
        np.testing.assert_array_equal(mine.sequences_to_matrix(seqs, mode), theirs.sequences_to_matrix(seqs, mode))
    for text in generated_reviews()[:10]:
        assert ours.text_to_word_sequence(text) == kp_text.text_to_word_sequence(text)
        assert ours.text_to_word_sequence(text, lower=False, split="e") == \
            kp_text.text_to_word_sequence(text, lower=False, split="e")
        assert ours.hashing_trick(text, 97, "md5") == kp_text.hashing_trick(text, 97, "md5")
        assert ours.one_hot(text, 1000) == kp_text.one_hot(text, 1000)


def test_clear_errors():
    tok = ours.Tokenizer()
    with pytest.raises(ConfigError, match="Specify a dimension"):
        tok.texts_to_matrix(["a b"])
    tok.fit_on_texts(["a b"])
    with pytest.raises(ConfigError, match="unknown vectorization mode 'tf-idf'"):
        tok.texts_to_matrix(["a"], mode="tf-idf")
    with pytest.raises(DataError, match="wrap it in a list"):
        tok.fit_on_texts("a single string")
    with pytest.raises(DataError, match="expected a text"):
        tok.texts_to_sequences([3])
    with pytest.raises(ConfigError, match="num_words"):
        ours.Tokenizer(num_words=-1)
    with pytest.raises(TypeError, match="Unrecognized keyword"):
        ours.Tokenizer(lowercase=True)
    with pytest.raises(DataError, match="not a Tokenizer's JSON"):
        ours.tokenizer_from_json("[1, 2]")
    with pytest.raises(DataError, match="unknown config fields"):
        cfg = json.loads(tok.to_json())
        cfg["config"]["evil"] = 1
        ours.tokenizer_from_json(json.dumps(cfg))
    with pytest.raises(ConfigError, match="Fit the Tokenizer"):
        ours.Tokenizer(num_words=5).sequences_to_matrix([[1]], mode="tfidf")
