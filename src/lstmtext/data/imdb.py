"""IMDB movie-review sentiment data with exactly the API and numbers of ``keras.datasets.imdb``.

Sources (the ``path`` argument of `load_data` and `get_word_index`):

- ``None`` (default): the archive named by the environment variable ``LSTMTEXT_IMDB_ARCHIVE`` if set,
  else the public ``aclImdb_v1.tar.gz`` downloaded once into the cache folder (sha256-checked).
- an ``aclImdb_v1.tar.gz`` archive, or an extracted ``aclImdb/`` folder (or the folder holding it);
- a Keras-format ``imdb.npz`` (ranks, read without unpickling) with its ``imdb_word_index.json`` beside it.

Parsing the 56 MB archive takes seconds, so the ranks are cached as a plain ``.npz`` in
``<cache folder>/parsed/`` (``cache_dir``, else ``$LSTMTEXT_CACHE_DIR``, ``$XDG_CACHE_HOME/lstmtext`` or
``~/.cache/lstmtext``), keyed by the file's sha256 (computed on every call: ~0.1 s for the archive, so a replaced
file is never served stale) and the tokenizer version. A folder is keyed by its files' names, sizes and
modification times instead. See `lstmtext.text.tokenizer` for the tokenization rule and
`lstmtext.data.corpus` for how words are ranked.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from lstmtext.data.archive import find_aclimdb_root, labelled_files, read_archive, read_folder
from lstmtext.data.corpus import RankedCorpus, RankedSplit, cache_path
from lstmtext.data.download import IMDB_SHA256, IMDB_URL, download, resolve_cache_dir, sha256_file
from lstmtext.data.keras_format import check_options, keras_num_words, keras_sequences
from lstmtext.data.keras_npz import read_keras_imdb_npz
from lstmtext.data.loader import CSV_SUFFIXES, JSONL_SUFFIXES
from lstmtext.errors import DataError
from lstmtext.text.tokenizer import Tokenizer
from lstmtext.text.vocab import Vocab

ARCHIVE_ENV = "LSTMTEXT_IMDB_ARCHIVE"
"""Environment variable naming a local ``aclImdb_v1.tar.gz`` to use when ``path`` is None."""

_SOURCES = "an aclImdb_v1.tar.gz archive, an extracted aclImdb/ folder or a Keras imdb.npz"


def resolve_source(
    path: str | os.PathLike[str] | None, *, cache: str | os.PathLike[str] | None = None, progress: bool = True
) -> Path:
    """The local file or folder to read: ``path``, else ``$LSTMTEXT_IMDB_ARCHIVE``, else the downloaded archive."""
    if path is None:
        env = os.environ.get(ARCHIVE_ENV)
        if env:
            if not os.path.exists(env):
                raise DataError(f"{ARCHIVE_ENV}={env!r} does not exist; expected {_SOURCES}")
            return Path(env)
        return download(IMDB_URL, resolve_cache_dir(cache) / "aclImdb_v1.tar.gz", sha256=IMDB_SHA256, progress=progress)
    if not os.path.exists(path):
        raise DataError(f"IMDB data path {os.fspath(path)!r} does not exist; expected {_SOURCES}")
    return Path(path)


def is_imdb_source(path: str | os.PathLike[str] | None) -> bool:
    """True for None (the default archive), an aclImdb archive, an aclImdb folder or a Keras ``imdb.npz``;
    False for your own data (a ``<label>/*.txt`` folder, a CSV/TSV or JSON-lines file).

    The one place that decides it (``lstmtext train``, ``stats`` and ``evaluate`` all ask here).
    """
    if path is None:
        return True
    p = Path(path)
    if p.is_dir():
        root = find_aclimdb_root(p)
        return root is not None and any((root / "train" / label).is_dir() for label in ("pos", "neg"))
    return p.suffix.lower() not in CSV_SUFFIXES and p.suffix.lower() not in JSONL_SUFFIXES


def load_data_and_tokenizer(
    path: str | os.PathLike[str] | None = None,
    num_words: int | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]], Tokenizer, Path]:
    """``load_data(path, num_words=num_words)`` and ``get_tokenizer(path, num_words=num_words)`` (Keras's other
    defaults) from one resolution and one read (one checksum) of the source.

    Returns:
        ``(data, tokenizer, source)``: what the two calls return, and the local file or folder read.
    """
    check_options(num_words, 0, None, 1, 2, 3)
    src = resolve_source(path, cache=cache_dir, progress=progress)
    corpus = load_corpus(src, cache_dir=cache_dir, progress=progress)
    data = keras_sequences(corpus, num_words, 0, None, 113, 1, 2, 3)
    # The words alone, as get_tokenizer builds them from the word index (the saved tokenizer has no counts).
    vocab = Vocab(corpus.vocab.words) if corpus.vocab is not None else None
    if vocab is None:  # a Keras imdb.npz: the word index lies beside it
        vocab = Vocab.from_word_index(get_word_index(src, cache_dir=cache_dir), source="IMDB word index")
    if num_words is None:
        num_words = keras_num_words(corpus, None, 1, 3)
    return data, Tokenizer(vocab, num_words=num_words), src


def _folder_key(root: Path) -> str:
    h = hashlib.sha256()
    for split, label, idx, file in sorted(labelled_files(root)):
        st = file.stat()
        h.update(f"{split}/{label}/{idx}/{file.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def load_corpus(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> RankedCorpus:
    """The dataset as word ranks in canonical order (no shuffle, no offsets), from the cache when possible.

    Args:
        path: a source (see the module docstring); None for the default archive.
        cache_dir: cache folder; None for `lstmtext.data.resolve_cache_dir`'s default.
        progress: show a progress bar when downloading.

    Returns:
        A `RankedCorpus` (its ``vocab`` is None for a Keras ``.npz``: use `get_word_index`).
    """
    src = resolve_source(path, cache=cache_dir, progress=progress)
    if src.is_dir():
        root = find_aclimdb_root(src)
        kind, key = "imdb-folder", (_folder_key(root) if root is not None else "")
        reader = read_folder
    elif src.suffix == ".json":
        raise DataError(f"{str(src)!r} is a word index; load_data expects {_SOURCES}")
    elif src.suffix == ".npz":
        kind, key, reader = "keras-npz", sha256_file(src), None
    else:
        kind, key, reader = "imdb", sha256_file(src), read_archive
    cached = cache_path(resolve_cache_dir(cache_dir), kind, key) if key else None
    if cached is not None and cached.exists():
        try:
            return RankedCorpus.load(cached)
        except DataError:
            pass  # a damaged or outdated cache entry is rebuilt below
    if reader is None:
        arrays = read_keras_imdb_npz(src)
        corpus = RankedCorpus(
            RankedSplit.from_lists(arrays["x_train"], arrays["y_train"]),
            RankedSplit.from_lists(arrays["x_test"], arrays["y_test"]),
            None,
        )
    else:
        splits = reader(src)
        corpus = RankedCorpus.from_texts(
            splits["train"].texts, splits["train"].labels, splits["test"].texts, splits["test"].labels
        )
    if cached is not None:
        try:
            corpus.save(cached)
        except OSError as e:
            warnings.warn(f"could not write the IMDB cache file {str(cached)!r}: {e}", RuntimeWarning, stacklevel=2)
    return corpus


def load_data(
    path: str | os.PathLike[str] | None = None,
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load the IMDB reviews as word-id sequences, exactly like ``keras.datasets.imdb.load_data``.

    Same steps, same numbers: one ``np.random.RandomState(seed)`` shuffles train then test; each rank
    ``r`` becomes ``r + index_from`` and ``start_char`` (if not None) is put first; with ``maxlen``,
    reviews whose sequence (start char included) has ``len >= maxlen`` are *dropped*; ids outside
    ``skip_top <= id < num_words`` become ``oov_char``, or are removed when it is None. With
    ``num_words=None``, ``num_words`` is the largest id present, which (as in Keras) is itself cut.

    Differences from Keras, both on inputs Keras mishandles: ``num_words=0`` raises a `ConfigError`
    (Keras silently treats it as None), and ``x`` is always a 1-D object array (numpy would make Keras's
    2-D if every review had the same length).

    Args:
        path: data source: None (``$LSTMTEXT_IMDB_ARCHIVE`` or the downloaded public archive), an
            ``aclImdb_v1.tar.gz``, an ``aclImdb/`` folder, or a Keras ``imdb.npz``.
        num_words: keep ids below this; None keeps all (see above).
        skip_top: ids below this become ``oov_char``. Default 0.
        maxlen: drop reviews with ``len >= maxlen``; None (or 0, as in Keras) keeps all.
        seed: shuffle seed. Default 113.
        start_char: id marking the start of each review; None for none. Default 1.
        oov_char: id of cut words; None drops them. Default 2.
        index_from: offset added to every rank. Default 3.
        cache_dir: cache folder (keyword only); default: `lstmtext.data.resolve_cache_dir`'s.
        progress: show a progress bar if the archive must be downloaded (keyword only).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``x`` is an ``(N,)`` object array of Python ``list``s
        of ints, ``y`` an ``(N,)`` int64 array of labels (1 = positive, 0 = negative). On the public
        archive N is 25,000 for both splits.

    Raises:
        ConfigError: a bad argument, or ``maxlen`` leaves no review in a split (a ``ValueError``, as in Keras).
        DataError: the source is missing, corrupt or of the wrong layout.

    >>> (x_train, y_train), (x_test, y_test) = load_data(num_words=5000)  # doctest: +SKIP
    >>> x_train[0][:4], y_train[0]  # doctest: +SKIP
    ([1, 12, 559, 886], np.int64(1))
    """
    check_options(num_words, skip_top, maxlen, start_char, oov_char, index_from)
    corpus = load_corpus(path, cache_dir=cache_dir, progress=progress)
    return keras_sequences(corpus, num_words, skip_top, maxlen, seed, start_char, oov_char, index_from)


def _read_word_index_json(path: Path) -> dict[str, int]:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError as e:
        raise DataError(f"word index file {str(path)!r} does not exist") from e
    except (OSError, ValueError) as e:  # ValueError: bad UTF-8, bad JSON, an integer of over 4300 digits
        raise DataError(f"word index file {str(path)!r} is not readable JSON: {e}") from e
    except RecursionError:  # the JSON parser recurses per nesting level
        raise DataError(f"word index file {str(path)!r} is not readable JSON: nested too deeply") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and type(v) is int for k, v in obj.items()):
        raise DataError(f"word index file {str(path)!r} must hold a JSON object of word -> integer rank")
    return obj


def get_word_index(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """The ``{word: rank}`` dict of the data `load_data` reads (rank 1 = most frequent training word).

    Like ``keras.datasets.imdb.get_word_index``: add ``index_from`` to a rank to get the id in
    ``load_data``'s sequences.

    Args:
        path: None or an archive / folder (ranks computed from its training reviews), a Keras
            ``imdb_word_index.json``, or a Keras ``imdb.npz`` (reads ``imdb_word_index.json`` beside it).
        cache_dir: cache folder (keyword only).
        progress: show a progress bar if the archive must be downloaded (keyword only).

    Returns:
        A new dict mapping each word to its rank.

    >>> word_index = get_word_index()  # doctest: +SKIP
    >>> word_index["the"]  # doctest: +SKIP
    1
    """
    src = resolve_source(path, cache=cache_dir, progress=progress)
    if src.is_file() and src.suffix == ".json":
        return _read_word_index_json(src)
    if src.is_file() and src.suffix == ".npz":
        return _read_word_index_json(src.with_name("imdb_word_index.json"))
    vocab = load_corpus(src, cache_dir=cache_dir, progress=progress).vocab
    if vocab is None:  # cannot happen: only .npz sources lack a vocabulary
        raise DataError(f"{str(src)!r} has no word index")
    return vocab.word_index


def get_tokenizer(
    path: str | os.PathLike[str] | None = None,
    num_words: int | None = None,
    skip_top: int = 0,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Tokenizer:
    """A `Tokenizer` that encodes raw text exactly as `load_data` with the same options encodes reviews.

    With ``num_words=None`` the tokenizer gets the ``num_words`` Keras's rule gives `load_data` (the
    largest id in the data, ``maxlen`` not applied), so even that quirk is reproduced.

    Args:
        path, num_words, skip_top, start_char, oov_char, index_from: as for `load_data`.
        cache_dir: cache folder (keyword only).

    Returns:
        The `Tokenizer` (save it with ``tokenizer.save("tokenizer.json")``).

    >>> tok = get_tokenizer(num_words=5000)  # doctest: +SKIP
    >>> tok.texts_to_sequences(["A wonderful film."])  # doctest: +SKIP
    [[1, 6, 385, 21]]
    """
    check_options(num_words, skip_top, None, start_char, oov_char, index_from, caller="get_tokenizer")
    vocab = Vocab.from_word_index(get_word_index(path, cache_dir=cache_dir), source="IMDB word index")
    if num_words is None:
        num_words = keras_num_words(load_corpus(path, cache_dir=cache_dir), None, start_char, index_from)
    return Tokenizer(
        vocab, num_words=num_words, skip_top=skip_top, start_char=start_char, oov_char=oov_char, index_from=index_from
    )
