"""Keras 2's legacy text utilities (``keras.preprocessing.text``): `Tokenizer`, `text_to_word_sequence`, hashing.

Same outputs as the ``keras-preprocessing`` package, which Keras 2 re-exported and Keras 3 dropped:
word indices by descending count with ties in first-seen order, ``num_words`` keeping indices below it,
``oov_token`` at index 1, the four ``texts_to_matrix`` modes (``tfidf`` is ``(1 + log(count)) *
log(1 + documents / (1 + document_frequency))``), and the same ``to_json`` text. The tests compare every
method with that package on IMDB reviews.

    >>> from lstmtext.preprocessing.text import Tokenizer
    >>> tok = Tokenizer(num_words=5000, oov_token="<OOV>")
    >>> tok.fit_on_texts(["The movie was great", "the plot was thin"])
    >>> tok.texts_to_sequences(["the movie was awful"])
    [[2, 4, 3, 1]]
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from hashlib import md5
from typing import Any

import numpy as np

from lstmtext.errors import ConfigError, DataError

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
MATRIX_MODES = ("binary", "count", "tfidf", "freq")


@lru_cache(maxsize=32)
def _translate_table(filters: str, split: str) -> dict[int, str]:
    return str.maketrans({c: split for c in filters})


def text_to_word_sequence(text: str, filters: str = DEFAULT_FILTERS, lower: bool = True,
                          split: str = " ") -> list[str]:
    """Split a text into words: optionally lower-case it, turn every ``filters`` character into ``split``, split.

    Args:
        text: the text.
        filters: characters to remove (default: ASCII punctuation except ``'``, plus tab and newline).
        lower: lower-case the text first (Python's full Unicode ``str.lower``).
        split: the word separator.

    Returns:
        The non-empty words, in order.

    >>> text_to_word_sequence("Don't <b>stop</b>!")
    ["don't", 'b', 'stop', 'b']
    """
    if lower:
        text = text.lower()
    text = text.translate(_translate_table(filters, split))
    return [w for w in text.split(split) if w]


def hashing_trick(text: str, n: int, hash_function: Callable[[str], int] | str | None = None,
                  filters: str = DEFAULT_FILTERS, lower: bool = True, split: str = " ",
                  analyzer: Callable[[str], list[str]] | None = None) -> list[int]:
    """Map each word of ``text`` to ``hash(word) % (n - 1) + 1`` (indices 1..n-1; 0 is never used).

    Args:
        text: the text.
        n: size of the hashing space.
        hash_function: None (Python's ``hash``, which changes between processes unless ``PYTHONHASHSEED`` is
            fixed), ``"md5"`` (stable), or any ``str -> int`` function.
        filters, lower, split: as in `text_to_word_sequence`.
        analyzer: a custom ``text -> words`` function used instead of `text_to_word_sequence`.
    """
    if hash_function is None:
        hash_function = hash
    elif hash_function == "md5":
        def hash_function(w: str) -> int:
            return int(md5(w.encode()).hexdigest(), 16)  # a bucket hash, as in Keras
    if not callable(hash_function):
        raise ConfigError(f"hashing_trick: hash_function must be None, 'md5' or a callable; got {hash_function!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"hashing_trick: n must be an integer >= 2, got {n!r}")
    seq = text_to_word_sequence(text, filters=filters, lower=lower, split=split) if analyzer is None \
        else analyzer(text)
    return [(hash_function(w) % (n - 1) + 1) for w in seq]


def one_hot(text: str, n: int, filters: str = DEFAULT_FILTERS, lower: bool = True, split: str = " ",
            analyzer: Callable[[str], list[str]] | None = None) -> list[int]:
    """`hashing_trick` with Python's ``hash`` (Keras's name; not a one-hot matrix)."""
    return hashing_trick(text, n, hash_function=hash, filters=filters, lower=lower, split=split, analyzer=analyzer)


class Tokenizer:
    """Keras 2's text tokenizer: learn a word index from texts, turn texts into index lists or matrices.

    Args:
        num_words: keep only words of index below ``num_words`` (the ``num_words - 1`` most frequent) when
            converting; None keeps all. Fitting always indexes every word.
        filters: characters removed from texts (default: punctuation except ``'``, tab, newline).
        lower: lower-case texts.
        split: the word separator.
        char_level: every character is a token.
        oov_token: if given, gets index 1 and stands for unknown (or beyond ``num_words``) words.
        analyzer: a custom ``text -> words`` function.
        document_count: documents already counted (set by `tokenizer_from_json`).

    Attributes:
        word_counts: ``{word: count}`` in first-seen order. word_docs: ``{word: number of documents}``.
        word_index / index_word: ``{word: index}`` and back (index 0 is never assigned).
        index_docs: ``{index: number of documents}``. document_count: documents fitted.
    """

    def __init__(self, num_words: int | None = None, filters: str = DEFAULT_FILTERS, lower: bool = True,
                 split: str = " ", char_level: bool = False, oov_token: str | None = None,
                 analyzer: Callable[[str], list[str]] | None = None, **kwargs: Any) -> None:
        if "nb_words" in kwargs:
            warnings.warn("The `nb_words` argument in `Tokenizer` has been renamed `num_words`.", stacklevel=2)
            num_words = kwargs.pop("nb_words")
        document_count = kwargs.pop("document_count", 0)
        if kwargs:
            raise TypeError("Unrecognized keyword arguments: " + str(kwargs))
        if num_words is not None and (isinstance(num_words, bool) or not isinstance(num_words, int)
                                      or num_words < 0):
            raise ConfigError(f"Tokenizer: num_words must be None or a non-negative integer, got {num_words!r}")
        if not isinstance(split, str) or not split:
            raise ConfigError(f"Tokenizer: split must be a non-empty string, got {split!r}")
        self.word_counts: dict[str, int] = OrderedDict()
        self.word_docs: defaultdict[str, int] = defaultdict(int)
        self.filters = filters
        self.split = split
        self.lower = lower
        self.num_words = num_words
        self.document_count = document_count
        self.char_level = char_level
        self.oov_token = oov_token
        self.index_docs: defaultdict[int, int] = defaultdict(int)
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}
        self.analyzer = analyzer

    def _words(self, text: str | list[str]) -> Sequence[str]:
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [t.lower() for t in text] if isinstance(text, list) else text.lower()
            return text
        if not isinstance(text, str):
            raise DataError(f"Tokenizer: expected a text (str) or a list of tokens, got {type(text).__name__}")
        if self.analyzer is None:
            return text_to_word_sequence(text, filters=self.filters, lower=self.lower, split=self.split)
        return self.analyzer(text)

    def fit_on_texts(self, texts: Iterable[str | list[str]]) -> None:
        """Update the word counts and rebuild the word index from ``texts`` (strings, or lists of tokens)."""
        if isinstance(texts, str):
            raise DataError("Tokenizer.fit_on_texts: expected a list of texts, got one str (wrap it in a list)")
        word_counts = self.word_counts
        for text in texts:
            self.document_count += 1
            seq = self._words(text)
            for w in seq:
                if w in word_counts:
                    word_counts[w] += 1
                else:
                    word_counts[w] = 1
            for w in set(seq):
                self.word_docs[w] += 1
        wcounts = list(word_counts.items())
        wcounts.sort(key=lambda x: x[1], reverse=True)  # stable: ties stay in first-seen order
        sorted_voc = [] if self.oov_token is None else [self.oov_token]
        sorted_voc.extend(wc[0] for wc in wcounts)
        self.word_index = dict(zip(sorted_voc, range(1, len(sorted_voc) + 1)))
        self.index_word = {c: w for w, c in self.word_index.items()}
        for w, c in list(self.word_docs.items()):
            self.index_docs[self.word_index[w]] = c

    def fit_on_sequences(self, sequences: Sequence[Sequence[int]]) -> None:
        """Count documents per index from index lists (needed by ``sequences_to_matrix(mode="tfidf")``)."""
        self.document_count += len(sequences)
        for seq in sequences:
            for i in set(seq):
                self.index_docs[i] += 1

    def texts_to_sequences(self, texts: Iterable[str | list[str]]) -> list[list[int]]:
        """Each text as the list of its words' indices (unknown words dropped, or ``oov_token``'s index)."""
        return list(self.texts_to_sequences_generator(texts))

    def texts_to_sequences_generator(self, texts: Iterable[str | list[str]]) -> Iterator[list[int]]:
        """`texts_to_sequences`, one text at a time."""
        if isinstance(texts, str):
            raise DataError("Tokenizer.texts_to_sequences: expected a list of texts, got one str (wrap it in a list)")
        num_words = self.num_words
        word_index = self.word_index
        oov_token_index = word_index.get(self.oov_token) if self.oov_token is not None else None
        for text in texts:
            vect = []
            for w in self._words(text):
                i = word_index.get(w)
                if i is not None:
                    if num_words and i >= num_words:
                        if oov_token_index is not None:
                            vect.append(oov_token_index)
                    else:
                        vect.append(i)
                elif self.oov_token is not None:
                    vect.append(oov_token_index)
            yield vect  # type: ignore[misc]  # oov_token_index is an int whenever oov_token is set and fitted

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Each index list back to a space-joined text (indices at or above ``num_words`` become the OOV word)."""
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences: Iterable[Sequence[int]]) -> Iterator[str]:
        """`sequences_to_texts`, one sequence at a time."""
        num_words = self.num_words
        oov_token_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for seq in sequences:
            vect = []
            for num in seq:
                word = self.index_word.get(num)
                if word is not None:
                    if num_words and num >= num_words:
                        if oov_token_index is not None:
                            vect.append(self.index_word[oov_token_index])
                    else:
                        vect.append(word)
                elif self.oov_token is not None:
                    vect.append(self.index_word[oov_token_index])  # type: ignore[index]
            yield " ".join(vect)

    def texts_to_matrix(self, texts: Iterable[str | list[str]], mode: str = "binary") -> np.ndarray:
        """``(len(texts), num_words)`` float64 matrix of the texts (see `sequences_to_matrix`)."""
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences: Sequence[Sequence[int]], mode: str = "binary") -> np.ndarray:
        """Index lists to a ``(len(sequences), num_words)`` float64 matrix.

        Args:
            sequences: index lists.
            mode: ``"binary"`` (1 if present), ``"count"``, ``"freq"`` (count / sequence length) or ``"tfidf"``
                (``(1 + log(count)) * log(1 + document_count / (1 + index_docs[i]))``).

        Raises:
            ConfigError: an unknown mode, or neither ``num_words`` nor a fitted word index to size the matrix,
                or ``"tfidf"`` before any fitting.
        """
        if mode not in MATRIX_MODES:
            raise ConfigError(f"Tokenizer: unknown vectorization mode {mode!r}; expected one of {MATRIX_MODES}")
        if not self.num_words:
            if self.word_index:
                num_words = len(self.word_index) + 1
            else:
                raise ConfigError("Specify a dimension (`num_words` argument), or fit on some text data first.")
        else:
            num_words = self.num_words
        if mode == "tfidf" and not self.document_count:
            raise ConfigError("Fit the Tokenizer on some data before using tfidf mode.")
        x = np.zeros((len(sequences), num_words))
        for i, seq in enumerate(sequences):
            if not seq:
                continue
            counts: defaultdict[int, int] = defaultdict(int)
            for j in seq:
                if j >= num_words:
                    continue
                counts[j] += 1
            for j, c in list(counts.items()):
                if mode == "count":
                    x[i][j] = c
                elif mode == "freq":
                    x[i][j] = c / len(seq)
                elif mode == "binary":
                    x[i][j] = 1
                else:  # tfidf: weighting scheme 2 of https://en.wikipedia.org/wiki/Tf%E2%80%93idf, as Keras
                    tf = 1 + np.log(c)
                    idf = np.log(1 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[i][j] = tf * idf
        return x

    def get_config(self) -> dict[str, Any]:
        """The configuration and learned dictionaries, the dictionaries as JSON strings (Keras's format)."""
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs: Any) -> str:
        """A JSON string that `tokenizer_from_json` (here or in Keras 2) turns back into this tokenizer.

        Args:
            **kwargs: passed to ``json.dumps``.
        """
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()}, **kwargs)


def tokenizer_from_json(json_string: str) -> Tokenizer:
    """Rebuild a `Tokenizer` from `Tokenizer.to_json` output (also Keras 2's and keras-preprocessing's).

    Raises:
        DataError: not JSON, or not a tokenizer's JSON (the message names the field).
    """
    try:
        tokenizer_config = json.loads(json_string)
        config = dict(tokenizer_config["config"])
        word_counts = json.loads(config.pop("word_counts"))
        word_docs = json.loads(config.pop("word_docs"))
        index_docs = {int(k): v for k, v in json.loads(config.pop("index_docs")).items()}
        index_word = {int(k): v for k, v in json.loads(config.pop("index_word")).items()}
        word_index = json.loads(config.pop("word_index"))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise DataError(f"tokenizer_from_json: not a Tokenizer's JSON ({type(e).__name__}: {e})") from None
    known = {"num_words", "filters", "lower", "split", "char_level", "oov_token", "document_count"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise DataError(f"tokenizer_from_json: unknown config fields {unknown}; expected some of {sorted(known)}")
    tokenizer = Tokenizer(**config)
    tokenizer.word_counts = OrderedDict(word_counts)
    tokenizer.word_docs = defaultdict(int, word_docs)
    tokenizer.index_docs = defaultdict(int, index_docs)
    tokenizer.word_index = word_index
    tokenizer.index_word = index_word
    return tokenizer
