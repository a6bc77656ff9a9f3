"""A pretraining corpus as token-id shards on disk, tokenized once with the project's tokenizer.

:func:`build_corpus` reads the documents of a source twice as a stream (:mod:`lstmtext.lm.documents`):
the first pass counts the words of the training documents, the second encodes every document with a
:class:`~lstmtext.text.Tokenizer` of the ``num_words`` most frequent words (start id 1 opens each
document, 2 is the out-of-vocabulary id, words from 3, 0 never occurs: the ids ``imdb.load_data`` and
every lstmtext classifier use) and appends the ids to shard files. Every ``valid_every``-th document goes
to the held-out split. Memory stays bounded by one block of documents whatever the corpus size.

The folder::

    corpus.json          tokenizer, shard list, token and document counts, source (written last)
    train-00000.ids ...  raw little-endian uint16 ids (int32 when num_words > 65,536)
    valid-00000.ids ...

:class:`TokenCorpus` opens it and exposes each split as one array-like over the shards (``numpy.memmap``,
read window by window).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmtext.errors import DataError
from lstmtext.text.tokenizer import TOKENIZER_VERSION, Tokenizer, normalize_bytes
from lstmtext.text.vocab import Vocab
from lstmtext.utils.io import atomic_write_json, fsync_dir

CORPUS_FORMAT = "lstmtext.lm-corpus"
CORPUS_FILE = "corpus.json"
#: Tokens per shard file (uint16: 128 MiB).
SHARD_TOKENS = 1 << 26


class ShardedArray:
    """A read-only 1-D view over several ``.ids`` files as one array (integer or array indexing)."""

    def __init__(self, files: list[Path], dtype: np.dtype) -> None:
        self.maps = [np.memmap(f, dtype=dtype, mode="r") for f in files if f.stat().st_size]
        self.bounds = np.zeros(len(self.maps) + 1, dtype=np.int64)
        np.cumsum([len(m) for m in self.maps], out=self.bounds[1:])

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def __getitem__(self, idx: Any) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if len(self.maps) == 1:
            return np.asarray(self.maps[0][idx])
        shard = np.searchsorted(self.bounds, idx, side="right") - 1
        out = np.empty(idx.shape, dtype=np.int64)
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self.maps[s][idx[sel] - self.bounds[s]]
        return out


@dataclass
class TokenCorpus:
    """An opened corpus folder (see the module docstring).

    Attributes:
        path: the folder.
        tokenizer: encodes text into the corpus's ids (what a fine-tuned classifier must use too).
        train, valid: the splits as 1-D id arrays.
        info: the ``corpus.json`` record (counts, source, seconds).
    """

    path: Path
    tokenizer: Tokenizer
    train: ShardedArray
    valid: ShardedArray
    info: dict[str, Any]

    @property
    def num_words(self) -> int:
        """Size of the id space (ids are in ``[0, num_words)``)."""
        return int(self.info["num_words"])

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TokenCorpus:
        """Open a folder written by :func:`build_corpus`.

        Raises:
            DataError: the folder is missing, incomplete (no ``corpus.json``) or inconsistent.
        """
        p = Path(path)
        meta_file = p / CORPUS_FILE
        if not meta_file.is_file():
            raise DataError(f"corpus {str(p)!r}: no {CORPUS_FILE} (not a corpus folder, or its build did not finish)")
        try:
            info = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"corpus {str(meta_file)!r}: unreadable ({e})") from e
        if info.get("format") != CORPUS_FORMAT or info.get("tokenizer_version") != TOKENIZER_VERSION:
            raise DataError(f"corpus {str(p)!r}: written by another lstmtext version; build it again")
        dtype = np.dtype(info["dtype"])
        splits = {}
        for split in ("train", "valid"):
            files = [p / name for name in info["shards"][split]]
            for f, n in zip(files, info["shard_tokens"][split]):
                if not f.is_file() or f.stat().st_size != n * dtype.itemsize:
                    raise DataError(f"corpus shard {str(f)!r}: missing or of the wrong size (expected {n:,} tokens)")
            splits[split] = ShardedArray(files, dtype)
        tokenizer = Tokenizer.from_json_dict(info["tokenizer"], source=str(meta_file))
        return cls(p, tokenizer, splits["train"], splits["valid"], info)


class _ShardWriter:
    def __init__(self, folder: Path, split: str, dtype: np.dtype) -> None:
        self.folder, self.split, self.dtype = folder, split, dtype
        self.names: list[str] = []
        self.counts: list[int] = []
        self.file: Any = None

    def write(self, ids: np.ndarray) -> None:
        ids = ids.astype(self.dtype, copy=False)
        while len(ids):
            if self.file is None or self.counts[-1] >= SHARD_TOKENS:
                self.close()
                self.names.append(f"{self.split}-{len(self.names):05d}.ids")
                self.counts.append(0)
                self.file = open(self.folder / self.names[-1], "wb")
            room = SHARD_TOKENS - self.counts[-1]
            self.file.write(ids[:room].tobytes())
            self.counts[-1] += len(ids[:room])
            ids = ids[room:]

    def close(self) -> None:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None


def _blocks(documents: Iterable[str], size: int) -> Iterable[list[str]]:
    block: list[str] = []
    for doc in documents:
        block.append(doc)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def build_corpus(
    documents: Callable[[], Iterable[str]],
    out: str | os.PathLike[str],
    *,
    num_words: int = 30000,
    valid_every: int = 50,
    source: str = "",
    block_size: int = 2048,
    progress: Callable[[str], Any] | None = None,
    key: dict[str, Any] | None = None,
    ops: Any = None,
) -> TokenCorpus:
    """Tokenize a stream of documents into a corpus folder (see the module docstring).

    Args:
        documents: a function returning a fresh iterable of the documents (it is called twice).
        out: the corpus folder (replaced if it holds a corpus).
        num_words: size of the id space: the ``num_words - 3`` most frequent training words get ids.
        valid_every: every ``valid_every``-th document is held out (0: none).
        source: what the documents are, recorded and used in messages.
        block_size: documents tokenized at a time (bounds the memory).
        progress: called with a status line now and then.
        key: what identifies the source and options (recorded; a caller compares it to reuse the corpus).
        ops: the compiled text kernels (``lstmtext.kernels.build.load_ops()``) for the word lookups of the
            encoding pass, or None for the Python lookups (the same ids, several times slower).

    Returns:
        The opened :class:`TokenCorpus`.

    Raises:
        DataError: the documents hold no word (an empty corpus).
    """
    if not isinstance(num_words, int) or num_words < 4:
        raise DataError(f"--num-words must be an integer >= 4, got {num_words!r}")
    if valid_every < 0 or valid_every == 1:
        raise DataError(f"valid_every must be 0 (no held-out documents) or >= 2, got {valid_every!r}")
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    out = Path(out)
    counts: Counter[bytes] = Counter()
    docs = 0
    for block in _blocks(documents(), block_size):
        for i, doc in enumerate(block):
            if not valid_every or (docs + i) % valid_every != valid_every - 1:
                counts.update(normalize_bytes(doc).split())
        docs += len(block)
        if docs % (block_size * 50) < block_size:
            say(f"counting words: {docs:,} documents")
    if not counts:
        raise DataError(f"--data {source!r}: no words in {docs:,} documents (an empty corpus)")
    ranked = counts.most_common(num_words - 3)
    vocab = Vocab([w.decode("ascii") for w, _ in ranked], [c for _, c in ranked])
    del counts, ranked
    tokenizer = Tokenizer(vocab, num_words=num_words)
    dtype = np.dtype("<u2") if num_words <= 1 << 16 else np.dtype("<i4")

    if out.exists():
        if out.is_dir() and ((out / CORPUS_FILE).exists() or not any(out.iterdir())):
            shutil.rmtree(out)
        else:
            raise DataError(f"corpus folder {str(out)!r} exists and is not a corpus; choose another folder")
    tmp = out.with_name(f".{out.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    writers = {s: _ShardWriter(tmp, s, dtype) for s in ("train", "valid")}
    n = 0
    for block in _blocks(documents(), block_size):
        ids, offsets = tokenizer.texts_to_flat(block, caller="build_corpus", ops=ops)
        held = np.array([bool(valid_every) and (n + i) % valid_every == valid_every - 1 for i in range(len(block))])
        doc_of = np.repeat(np.arange(len(block)), np.diff(offsets))
        if held.any():
            writers["valid"].write(ids[held[doc_of]])
        writers["train"].write(ids[~held[doc_of]])
        n += len(block)
        if n % (block_size * 50) < block_size:
            say(f"encoding: {n:,} documents")
    for w in writers.values():
        w.close()
    info = {
        "format": CORPUS_FORMAT, "version": 1, "tokenizer_version": TOKENIZER_VERSION,
        "source": source, "documents": n, "valid_every": valid_every, "num_words": num_words,
        "dtype": dtype.str, "tokenizer": tokenizer.to_json_dict(),
        "shards": {s: w.names for s, w in writers.items()},
        "shard_tokens": {s: w.counts for s, w in writers.items()},
        "tokens": {s: int(sum(w.counts)) for s, w in writers.items()},
        "seconds": round(time.perf_counter() - t0, 3), "key": key or {},
    }
    atomic_write_json(tmp / CORPUS_FILE, info)  # the commit marker, last
    os.replace(tmp, out)
    fsync_dir(out.parent)
    return TokenCorpus.open(out)
