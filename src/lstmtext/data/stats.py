"""Dataset statistics (what ``lstmtext stats`` prints): reviews per split, class balance, vocabulary, lengths."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmtext.data.corpus import RankedCorpus, RankedSplit
from lstmtext.data.imdb import is_imdb_source, load_corpus, resolve_source
from lstmtext.data.loader import CSV_SUFFIXES, load_text_corpus

_IMDB_CLASSES = ["neg", "pos"]


@dataclass
class SplitStats:
    """One split: example count, examples per class, and token counts (words, no start char)."""

    examples: int
    class_counts: list[int]
    tokens: int
    mean_length: float
    median_length: float
    max_length: int
    min_length: int

    @classmethod
    def of(cls, lengths: np.ndarray, labels: np.ndarray, num_classes: int) -> SplitStats:
        """Statistics of reviews with these token counts and class indices."""
        empty = len(lengths) == 0
        return cls(
            examples=int(len(labels)),
            class_counts=np.bincount(labels, minlength=num_classes).tolist() if len(labels) else [0] * num_classes,
            tokens=int(lengths.sum()),
            mean_length=0.0 if empty else float(lengths.mean()),
            median_length=0.0 if empty else float(np.median(lengths)),
            max_length=0 if empty else int(lengths.max()),
            min_length=0 if empty else int(lengths.min()),
        )


@dataclass
class DatasetStats:
    """Statistics of a train and a test split and of the training vocabulary."""

    source: str
    kind: str  # "IMDB archive", "IMDB folder", "Keras imdb.npz", "CSV file", ...
    class_names: list[str]
    train: SplitStats
    test: SplitStats
    vocabulary_size: int | None  # None when unknown (a Keras .npz without its word index)
    test_unknown_tokens: int | None  # test tokens whose word never occurs in training

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)

    def format(self) -> str:
        """A human-readable table."""
        noun = "reviews" if self.class_names == _IMDB_CLASSES else "examples"
        rows: list[tuple[str, str, str]] = [(noun, f"{self.train.examples:,}", f"{self.test.examples:,}")]
        for k, name in enumerate(self.class_names):
            label = "% positive" if self.class_names == _IMDB_CLASSES and k == 1 else f"% class {name!r}"
            if self.class_names == _IMDB_CLASSES and k == 0:
                continue
            rows.append((label, _percent(self.train, k), _percent(self.test, k)))
        rows += [
            ("tokens", f"{self.train.tokens:,}", f"{self.test.tokens:,}"),
            ("mean length", f"{self.train.mean_length:.1f}", f"{self.test.mean_length:.1f}"),
            ("median length", f"{self.train.median_length:g}", f"{self.test.median_length:g}"),
            ("max length", f"{self.train.max_length:,}", f"{self.test.max_length:,}"),
            ("min length", f"{self.train.min_length:,}", f"{self.test.min_length:,}"),
        ]
        width = max(len(r[0]) for r in rows)
        cols = [max(len(r[i]) for r in rows + [("", "train", "test")]) for i in (1, 2)]
        lines = [f"{self.kind}: {self.source}", f"{'':{width}}  {'train':>{cols[0]}}  {'test':>{cols[1]}}"]
        lines += [f"{a:{width}}  {b:>{cols[0]}}  {c:>{cols[1]}}" for a, b, c in rows]
        if self.vocabulary_size is not None:
            vocab = f"vocabulary: {self.vocabulary_size:,} words (training split)"
            if self.test_unknown_tokens is not None and self.test.tokens:
                share = 100 * self.test_unknown_tokens / self.test.tokens
                vocab += f"; test tokens not in it: {self.test_unknown_tokens:,} ({share:.2f} %)"
            lines.append(vocab)
        lines.append(f"classes: {', '.join(self.class_names)}")
        return "\n".join(lines)


def _percent(split: SplitStats, k: int) -> str:
    return f"{100 * split.class_counts[k] / split.examples:.1f} %" if split.examples else "-"


def _corpus_stats(corpus: RankedCorpus, source: str, kind: str, class_names: list[str]) -> DatasetStats:
    def split_stats(s: RankedSplit) -> SplitStats:
        return SplitStats.of(s.lengths, s.labels, len(class_names))

    vocab_size = len(corpus.vocab) if corpus.vocab is not None else None
    unknown = int((corpus.test.ranks > vocab_size).sum()) if vocab_size is not None else None
    return DatasetStats(
        source, kind, class_names, split_stats(corpus.train), split_stats(corpus.test), vocab_size, unknown
    )


def dataset_stats(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    text_column: str = "text",
    label_column: str = "label",
    test_split: float = 0.2,
    progress: bool = True,
) -> DatasetStats:
    """Statistics of an IMDB source (as ``imdb.load_data`` reads it) or of your own data (``load_dataset``).

    Args:
        path: an IMDB archive / ``aclImdb`` folder / Keras ``imdb.npz``, a ``<label>/*.txt`` folder, a CSV
            or JSON-lines file; None for the default IMDB archive.
        cache_dir: the cache folder for IMDB sources.
        text_column, label_column, test_split: as for `lstmtext.data.loader.load_dataset` (seed 113).
        progress: show a progress bar if the IMDB archive must be downloaded.

    Returns:
        A `DatasetStats` (``print(stats.format())``).
    """
    if is_imdb_source(path):
        src = resolve_source(path, cache=cache_dir, progress=progress)
        corpus = load_corpus(src, cache_dir=cache_dir, progress=progress)
        kind = "IMDB folder" if src.is_dir() else ("Keras imdb.npz" if src.suffix == ".npz" else "IMDB archive")
        return _corpus_stats(corpus, str(src), kind, list(_IMDB_CLASSES))
    corpus, class_names = load_text_corpus(
        path, test_split=test_split, text_column=text_column, label_column=label_column
    )
    p = Path(path)
    kind = "folder" if p.is_dir() else ("CSV file" if p.suffix.lower() in CSV_SUFFIXES else "JSON-lines file")
    return _corpus_stats(corpus, str(path), kind, class_names)
