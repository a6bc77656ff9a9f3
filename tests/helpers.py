"""Test data builders shared by the test suite: a tiny aclImdb-shaped dataset, as a .tar.gz or a folder.

The reviews are generated (no real data), but read like reviews: positive ones lean on praise words,
negative ones on complaints, with shared filler, ``<br />`` tags, apostrophes, digits, capitals and a
few non-ASCII letters, so a small model can learn the sentiment and the tokenizer meets every case.
The output is byte-for-byte deterministic for a given ``(n_per_class, seed)``.

    >>> from helpers import make_tiny_imdb_archive
    >>> path = make_tiny_imdb_archive(tmp_path / "aclImdb_v1.tar.gz", n_per_class=50, seed=0)
"""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
from pathlib import Path

POSITIVE = [
    "great",
    "wonderful",
    "excellent",
    "loved",
    "brilliant",
    "superb",
    "moving",
    "beautiful",
    "funny",
    "charming",
    "masterpiece",
    "enjoyable",
    "perfect",
    "touching",
    "best",
    "fantastic",
    "delightful",
]
NEGATIVE = [
    "awful",
    "boring",
    "terrible",
    "waste",
    "worst",
    "dull",
    "poorly",
    "disappointing",
    "stupid",
    "bad",
    "horrible",
    "mess",
    "pointless",
    "annoying",
    "weak",
    "lame",
    "unwatchable",
]
FILLER = [
    "the",
    "movie",
    "film",
    "plot",
    "acting",
    "director",
    "story",
    "characters",
    "scene",
    "ending",
    "was",
    "is",
    "a",
    "and",
    "of",
    "to",
    "this",
    "it",
    "with",
    "cast",
    "music",
    "script",
    "really",
    "very",
    "i",
    "thought",
    "watched",
    "time",
    "one",
    "first",
    "actors",
    "camera",
    "dialogue",
    "two",
    "hours",
]
FRAGMENTS = ["don't", "isn't", "it's", "i'd", "'quoted'", "rock'n'roll", "o''clock"]
ODD = ["Café", "naïve", "1984", "10/10", "(yes)", "--", "...", "UPPER", "Mixed-Case", "über"]


def _review(rng: random.Random, positive: bool) -> str:
    lean, other = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
    sentences = []
    for _ in range(rng.randint(2, 6)):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 12))]
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(lean))
        if rng.random() < 0.2:  # mixed feelings, as in real reviews
            words.insert(rng.randrange(len(words) + 1), rng.choice(other))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(FRAGMENTS))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words) + 1), rng.choice(ODD))
        sentence = " ".join(words)
        sentences.append(sentence[0].upper() + sentence[1:] + rng.choice([".", "!", "...", "?"]))
    text = " ".join(sentences)
    if rng.random() < 0.5:
        cut = text.find(". ")
        if cut > 0:
            text = text[: cut + 1] + "<br /><br />" + text[cut + 2 :]
    return text


def tiny_imdb_files(n_per_class: int = 20, seed: int = 0, n_unsup: int = 3) -> dict[str, bytes]:
    """``{archive member name: content}`` of a tiny aclImdb dataset, members in a scrambled order.

    Each of train/pos, train/neg, test/pos, test/neg gets ``n_per_class`` reviews named
    ``<id>_<rating>.txt`` (ids 0..n-1 shuffled, ratings 7-10 for pos and 1-4 for neg), plus a few
    ``train/unsup`` reviews and the README/vocab/url files of the real archive.
    """
    rng = random.Random(seed)
    files: dict[str, bytes] = {
        "aclImdb/README": b"Large Movie Review Dataset (tiny generated stand-in for tests)\n",
        "aclImdb/imdb.vocab": "\n".join(sorted(set(POSITIVE + NEGATIVE + FILLER))).encode() + b"\n",
    }
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            ids = list(range(n_per_class))
            rng.shuffle(ids)
            for i in ids:
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                files[f"aclImdb/{split}/{label}/{i}_{rating}.txt"] = _review(rng, label == "pos").encode("utf-8")
            files[f"aclImdb/{split}/urls_{label}.txt"] = (
                b"http://www.imdb.com/title/tt0000000/usercomments\n" * n_per_class
            )
    for i in range(n_unsup):
        files[f"aclImdb/train/unsup/{i}_0.txt"] = _review(rng, rng.random() < 0.5).encode("utf-8")
    names = list(files)
    rng.shuffle(names)
    return {name: files[name] for name in names}


def make_tiny_imdb_archive(path: str | Path, n_per_class: int = 20, seed: int = 0, n_unsup: int = 3) -> Path:
    """Write a tiny ``aclImdb_v1.tar.gz``-shaped archive (deterministic bytes) and return its path.

    Args:
        path: the archive file to write.
        n_per_class: reviews in each of train/pos, train/neg, test/pos, test/neg.
        seed: generator seed.
        n_unsup: unlabelled ``train/unsup`` reviews (ignored by the loaders, as in the real archive).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = set()
        for name, content in tiny_imdb_files(n_per_class, seed, n_unsup).items():
            parts = name.split("/")
            for k in range(1, len(parts)):
                d = "/".join(parts[:k])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_300_000_000
                    tf.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 1_300_000_000
            tf.addfile(info, io.BytesIO(content))
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return path


def make_tiny_imdb_folder(path: str | Path, n_per_class: int = 20, seed: int = 0, n_unsup: int = 3) -> Path:
    """Write the same dataset as `make_tiny_imdb_archive`, extracted: returns ``path / "aclImdb"``."""
    path = Path(path)
    for name, content in tiny_imdb_files(n_per_class, seed, n_unsup).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return path / "aclImdb"


def write_keras_imdb_npz(path: str | Path, corpus) -> Path:
    """Write a `RankedCorpus` as Keras writes ``imdb.npz`` (object arrays of rank lists) + its word index JSON.

    This is test-side writing with numpy's own pickling, to produce files in Keras's format.
    """
    import json

    import numpy as np

    path = Path(path)
    arrays = {}
    for split in ("train", "test"):
        ranked = getattr(corpus, split)
        x = np.empty(len(ranked), dtype=object)
        for i, seq in enumerate(ranked.to_lists()):
            x[i] = seq
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, ranked.labels
    np.savez(path, **arrays)
    if corpus.vocab is not None:
        path.with_name("imdb_word_index.json").write_text(json.dumps(corpus.vocab.word_index))
    return path


REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_imdb_archive_path() -> Path | None:
    """The real archive: ``$LSTMTEXT_IMDB_ARCHIVE`` or ``../shared/datasets/aclImdb_v1.tar.gz`` from the repo root."""
    env = os.environ.get("LSTMTEXT_IMDB_ARCHIVE")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "datasets" / "aclImdb_v1.tar.gz"
    return candidate if candidate.is_file() else None


def shared_dir() -> Path:
    """The shared material folder: the one holding ``datasets/`` with the archive, else ``../shared``."""
    env = os.environ.get("LSTMTEXT_IMDB_ARCHIVE")
    if env and Path(env).parent.name == "datasets":
        return Path(env).resolve().parent.parent
    return REPO_ROOT.parent / "shared"
