"""The word tokenizer and the `Tokenizer` that turns raw strings into the ids `imdb.load_data` gives.

The rule (tokenizer version 1, `TOKENIZER_VERSION`), applied to each review or input string:

1. lower-case the text with Python's ``str.lower``;
2. replace every ``<br />`` (the line break tag of the IMDB reviews) with a space;
3. a word is a maximal run of the characters ``a``-``z`` and ``'``, with its leading and trailing
   apostrophes stripped; runs that are only apostrophes are dropped. Everything else (digits,
   punctuation, accented and other non-ASCII letters) separates words.

So ``"Don't <br />watch 'Cats' (2019)!"`` gives ``["don't", "watch", "cats"]``. This is the rule of the
Keras-format IMDB arrays that the Keras benchmark scripts are run on, so lstmtext and Keras train on the
very same integers. Changing the rule changes every id: bump `TOKENIZER_VERSION`, which also keys the
parsed-data cache.

The implementation works on bytes (``str.translate`` with a 256-entry table, ``bytes.replace`` for
edge apostrophes, ``bytes.split``): several times faster than the textbook ``re.findall`` loop
(``bench/bench_data.py`` measures both), same tokens (tests compare them on random text).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lstmtext.errors import ConfigError, DataError
from lstmtext.text.vocab import Vocab
from lstmtext.utils.io import atomic_write_json

TOKENIZER_VERSION = 1
"""Version of the tokenization rule above; part of every cache key and of saved tokenizers."""

# Bytes that can be part of a word (a-z and the apostrophe) map to themselves, every other byte to a space.
_WORD_BYTES = bytes(c if (97 <= c <= 122 or c == 39) else 32 for c in range(256))
# Apostrophes at the start or end of a word (runs included); inner ones ("don't", "o''clock") stay.
_EDGE_APOSTROPHES = re.compile(rb"(?<![a-z'])'+|'+(?![a-z'])")


def normalize_bytes(text: str) -> bytes:
    """Return ``text`` as ASCII bytes holding only words separated by spaces (steps 1-3 of the rule)."""
    # Lower-case before dropping non-ASCII: str.lower maps a few non-ASCII letters to ASCII ones
    # (e.g. the Kelvin sign to "k"), and the reference rule sees those letters.
    b = text.lower().replace("<br />", " ").encode("ascii", "replace").translate(_WORD_BYTES)
    if b"'" in b:
        # Only words and spaces are left: an edge apostrophe touches a space or an end. bytes.replace
        # (one pass per apostrophe of the longest edge run, usually 1) is ~5x faster than the regex,
        # which stays as the fallback for pathological runs.
        b = b" " + b + b" "
        for _ in range(4):
            if b" '" not in b and b"' " not in b:
                return b
            b = b.replace(b" '", b"  ").replace(b"' ", b"  ")
        b = _EDGE_APOSTROPHES.sub(b" ", b)
    return b


def tokenize(text: str) -> list[str]:
    """Split one string into words with the lstmtext rule (see the module docstring).

    Args:
        text: any string, e.g. one review.

    Returns:
        The list of words, in order.

    >>> tokenize("Don't <br />watch 'Cats' (2019)!")
    ["don't", 'watch', 'cats']
    """
    if not isinstance(text, str):
        raise DataError(f"tokenize: expected a str, got {type(text).__name__}")
    return normalize_bytes(text).decode("ascii").split()


def tokenize_bytes(text: str) -> list[bytes]:
    """Like `tokenize` but the words are ASCII ``bytes`` (what the fast lookups in `Vocab` use)."""
    return normalize_bytes(text).split()


# The top-level fields of a saved tokenizer (`Tokenizer.to_json_dict`).
_TOKENIZER_FIELDS = frozenset({"format", "version", "tokenizer_version", "config", "vocab"})

class Tokenizer:
    """Turns raw strings into the integer sequences `lstmtext.datasets.imdb.load_data` gives.

    A `Vocab` (word ranks, 1 = most frequent training word) plus the Keras ``load_data`` options that
    map a rank ``r`` to an id: ``r + index_from``, kept when ``skip_top <= id < num_words``, else
    ``oov_char`` (or dropped when ``oov_char`` is None); ``start_char`` (if not None) is put first, and
    goes through the same cut (as in Keras).
    A word that is not in the vocabulary has rank ``len(vocab) + 1``, exactly like a test-set word
    never seen in training in ``load_data``; with the defaults it becomes ``oov_char``.

    With ``num_words=None`` every vocabulary word is kept and unknown words become ``oov_char``; this is
    what ``load_data(num_words=None)`` gives on IMDB, whose test set has unknown words (Keras then takes
    ``num_words`` = the largest id seen, which is the unknown-word id).

    Args:
        vocab: the `Vocab` (or a Keras-style ``{word: rank}`` dict).
        num_words: keep ids below this (Keras ``num_words``); None keeps the whole vocabulary.
        skip_top: ids below this become ``oov_char`` (Keras ``skip_top``). Default 0.
        start_char: id put at the start of every sequence; None for none. Default 1.
        oov_char: id of cut-out words; None drops them. Default 2.
        index_from: offset added to every rank. Default 3.

    >>> tok = Tokenizer({"the": 1, "movie": 2, "great": 3}, num_words=7)
    >>> tok.texts_to_sequences(["The movie was great!"])  # "was" is unknown: oov_char
    [[1, 4, 5, 2, 6]]
    """

    def __init__(
        self,
        vocab: Vocab | dict[str, int],
        *,
        num_words: int | None = None,
        skip_top: int = 0,
        start_char: int | None = 1,
        oov_char: int | None = 2,
        index_from: int = 3,
    ) -> None:
        self.vocab = vocab if isinstance(vocab, Vocab) else Vocab.from_word_index(vocab)
        for name, value, optional in (
            ("num_words", num_words, True),
            ("skip_top", skip_top, False),
            ("start_char", start_char, True),
            ("oov_char", oov_char, True),
            ("index_from", index_from, False),
        ):
            if value is None and optional:
                continue
            # Ids go through int64 arithmetic and, by default, int32 arrays (pad_sequences): keep them int32.
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < 2**31:
                raise ConfigError(f"Tokenizer: {name} must be a non-negative integer below 2**31, got {value!r}")
        if num_words is not None and num_words < 1:
            raise ConfigError(f"Tokenizer: num_words must be a positive integer or None, got {num_words!r}")
        self.num_words = None if num_words is None else int(num_words)
        self.skip_top = int(skip_top)
        self.start_char = None if start_char is None else int(start_char)
        self.oov_char = None if oov_char is None else int(oov_char)
        self.index_from = int(index_from)

    # -- encoding ----------------------------------------------------------------------------------
    def _limit(self) -> int:
        # Ids >= limit are cut. num_words=None keeps all known words; the unknown rank is len+1.
        return self.num_words if self.num_words is not None else len(self.vocab) + 1 + self.index_from

    def _start(self) -> list[int]:
        # Keras applies the skip_top/num_words cut to the start char as well.
        if self.start_char is None:
            return []
        if self.skip_top <= self.start_char < self._limit():
            return [self.start_char]
        return [] if self.oov_char is None else [self.oov_char]

    def text_to_sequence(self, text: str) -> list[int]:
        """Encode one string; see `texts_to_sequences`."""
        return self.texts_to_sequences([text])[0]

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        """Encode raw strings into lists of ids, exactly as ``load_data`` encodes reviews.

        Args:
            texts: an iterable of strings (a single ``str`` is refused: wrap it in a list).

        Returns:
            One list of ints per text (variable lengths; pad them with ``pad_sequences``).
        """
        ids, offsets = self.texts_to_flat(texts, caller="Tokenizer.texts_to_sequences")
        values = ids.tolist()
        return [values[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]

    def texts_to_flat(self, texts: Iterable[str], *, caller: str = "Tokenizer.texts_to_flat", ops: Any = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """`texts_to_sequences` as one flat array: text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.

        Nothing goes through Python lists (`lstmtext.Predictor` pads these with
        `lstmtext.data.sequence.pad_flat`). ``ops``: the compiled text kernels to look the words up with
        (``lstmtext.kernels.build.load_ops()``), or None for the Python lookups (same result).

        Returns:
            ``(ids, offsets)``: int64 ids and int64 offsets of shape ``(len(texts) + 1,)``.
        """
        if isinstance(texts, str | bytes):
            raise DataError(f"{caller}: expected a list of strings, got a single string")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise DataError(f"{caller}: item {i} is {type(t).__name__}, expected str")
        flat, offsets = self.vocab.encode_normalized([normalize_bytes(t) for t in texts], ops)
        ids = flat.astype(np.int64) + self.index_from
        keep = (ids >= self.skip_top) & (ids < self._limit())
        if self.oov_char is not None:
            ids = np.where(keep, ids, self.oov_char)
        else:
            # Drop cut words: recount each text's length from the kept positions.
            doc = np.repeat(np.arange(len(texts)), np.diff(offsets))
            ids = ids[keep]
            offsets = np.zeros(len(texts) + 1, dtype=np.int64)
            np.cumsum(np.bincount(doc[keep], minlength=len(texts)), out=offsets[1:])
        start = self._start()
        if start:
            ids = np.insert(ids, offsets[:-1], start[0])
            offsets = offsets + np.arange(len(texts) + 1)
        return ids, offsets

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Decode id sequences back to space-joined words (start, OOV and padding ids are skipped)."""
        words = self.vocab.words
        out = []
        for seq in sequences:
            toks = []
            for i in seq:
                rank = int(i) - self.index_from
                if int(i) in (0, self.start_char, self.oov_char) or not 1 <= rank <= len(words):
                    continue
                toks.append(words[rank - 1])
            out.append(" ".join(toks))
        return out

    # -- serialization -----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The encoding options (not the vocabulary) as a JSON-able dict."""
        return {
            "num_words": self.num_words,
            "skip_top": self.skip_top,
            "start_char": self.start_char,
            "oov_char": self.oov_char,
            "index_from": self.index_from,
        }

    def to_json_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, as a JSON-able dict."""
        return {
            "format": "lstmtext.tokenizer",
            "version": 1,
            "tokenizer_version": TOKENIZER_VERSION,
            "config": self.get_config(),
            "vocab": self.vocab.to_json_dict(),
        }

    @classmethod
    def from_json_dict(cls, obj: Any, *, source: str = "tokenizer JSON") -> Tokenizer:
        """Rebuild a tokenizer from `to_json_dict` output; ``source`` names the file in errors."""
        if not isinstance(obj, dict) or obj.get("format") != "lstmtext.tokenizer":
            raise DataError(f'{source}: not an lstmtext tokenizer file (expected "format": "lstmtext.tokenizer")')
        unknown = sorted(set(obj) - _TOKENIZER_FIELDS)
        if unknown:  # a field this version does not know would be silently ignored: refuse it, named
            raise DataError(f"{source}: unknown field(s) {unknown}; a tokenizer file holds {sorted(_TOKENIZER_FIELDS)}")
        if obj.get("tokenizer_version") != TOKENIZER_VERSION:
            raise DataError(
                f"{source}: tokenizer_version {obj.get('tokenizer_version')!r} is not supported, "
                f"this lstmtext reads version {TOKENIZER_VERSION}"
            )
        config = obj.get("config")
        if not isinstance(config, dict) or set(config) != set(cls({}).get_config()):
            raise DataError(f'{source}: "config" must hold exactly {sorted(cls({}).get_config())}')
        vocab = Vocab.from_json_dict(obj.get("vocab"), source=source)
        try:
            return cls(vocab, **config)
        except ConfigError as e:
            raise DataError(f"{source}: {e}") from e

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer to a JSON file, atomically."""
        atomic_write_json(path, self.to_json_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a tokenizer written by `save`."""
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except FileNotFoundError as e:
            raise DataError(f"tokenizer file {os.fspath(path)!r} does not exist") from e
        except (OSError, ValueError) as e:  # ValueError: bad UTF-8, bad JSON, an integer of over 4300 digits
            raise DataError(f"tokenizer file {os.fspath(path)!r} is not readable JSON: {e}") from e
        except RecursionError:  # the JSON parser recurses per nesting level
            raise DataError(f"tokenizer file {os.fspath(path)!r} is not readable JSON: nested too deeply") from None
        return cls.from_json_dict(obj, source=f"tokenizer file {os.fspath(path)!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_json_dict() == other.to_json_dict()

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Tokenizer({len(self.vocab)} words, {opts})"
