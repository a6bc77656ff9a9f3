"""Data pipeline timings on the real IMDB archive, each beside a reference measured in the same run.

- first ``imdb.load_data`` (parse the 56 MB archive, rank, write the cache) vs the reference Keras-format
  build script (``../shared/peers/build_imdb_keras.py``: parse + rank + save; then its ``load_data``);
- cached ``imdb.load_data``;
- ``pad_sequences(x_train, maxlen=300)`` vs ``keras.utils.pad_sequences`` (if Keras is installed);
- ``Tokenizer.texts_to_sequences`` on the 25,000 raw training reviews.

Run from the repository root:

    PYTHONPATH=src python bench/bench_data.py --repeats 3

The archive is ``$LSTMTEXT_IMDB_ARCHIVE`` or ``../shared/datasets/aclImdb_v1.tar.gz``. Each figure is the
median of ``--repeats`` runs; timings on shared machines vary, so compare the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


_WORD = re.compile(r"[a-z']+")


def _reference_tokenize(text: str) -> list[str]:
    """The rule as the reference build script implements it."""
    text = text.lower().replace("<br />", " ")
    return [w for w in (w.strip("'") for w in _WORD.findall(text)) if w]


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _one_repeat(archive: str, peer: Path, record) -> None:
    from lstmtext.data.archive import read_archive
    from lstmtext.datasets import imdb
    from lstmtext.preprocessing.sequence import pad_sequences
    from lstmtext.text import tokenize

    with tempfile.TemporaryDirectory() as cache:
        seconds, data = _timed(lambda: imdb.load_data(archive, cache_dir=cache, progress=False))
        record("load_data, first (parse + cache)", seconds)
        record("load_data, cached", _timed(lambda: imdb.load_data(archive, cache_dir=cache))[0])
        record(
            "load_data num_words=5000, cached",
            _timed(lambda: imdb.load_data(archive, num_words=5000, cache_dir=cache))[0],
        )
        if peer.is_file():
            out = Path(cache) / "peer"
            out.mkdir()
            cmd = [sys.executable, str(peer), archive, str(out / "imdb.npz"), str(out / "wi.json")]
            record(
                "reference build script (parse + rank + save)",
                _timed(lambda: subprocess.run(cmd, check=True, capture_output=True))[0],
            )
            spec = importlib.util.spec_from_file_location("peer_build", peer)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            record("reference load_data (its npz)", _timed(lambda: module.load_data(str(out / "imdb.npz")))[0])
        (x_train, _), _ = data
        record("pad_sequences maxlen=300 (25,000)", _timed(lambda: pad_sequences(x_train, maxlen=300))[0])
        try:
            os.environ.setdefault("KERAS_BACKEND", "torch")
            import keras

            record(
                "keras pad_sequences maxlen=300 (25,000)",
                _timed(lambda: keras.utils.pad_sequences(x_train, maxlen=300))[0],
            )
        except ImportError:
            pass
        tokenizer = imdb.get_tokenizer(archive, num_words=5000, cache_dir=cache)
        texts = read_archive(archive)["train"].texts
        record("tokenize (25,000 reviews)", _timed(lambda: [tokenize(t) for t in texts])[0])
        record("reference tokenize rule (25,000 reviews)", _timed(lambda: [_reference_tokenize(t) for t in texts])[0])
        record("Tokenizer.texts_to_sequences (25,000 reviews)", _timed(lambda: tokenizer.texts_to_sequences(texts))[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("LSTMTEXT_IMDB_ARCHIVE") or str(ROOT.parent / "shared" / "datasets" / "aclImdb_v1.tar.gz")
    parser.add_argument("--archive", default=default)
    parser.add_argument("--peer", default=str(Path(default).resolve().parent.parent / "peers" / "build_imdb_keras.py"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        results.setdefault(name, []).append(seconds)
        print(f"  {name}: {seconds:.3f} s", flush=True)

    for r in range(args.repeats):
        print(f"repeat {r + 1}/{args.repeats}")
        _one_repeat(args.archive, Path(args.peer), record)

    print(f"\nmedian of {args.repeats} (archive {args.archive}):")
    width = max(map(len, results))
    for name, values in results.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:{width}}  median {statistics.median(values):7.3f} s  min {min(values):7.3f} s  (runs: {runs})")
    med = {k: statistics.median(v) for k, v in results.items()}
    ref = med.get("reference build script (parse + rank + save)")
    if ref:
        print(f"  first load_data / reference build: {med['load_data, first (parse + cache)'] / ref:.2f}")
    keras_pad = med.get("keras pad_sequences maxlen=300 (25,000)")
    ref_tok = med.get("reference tokenize rule (25,000 reviews)")
    if ref_tok:
        print(f"  tokenize / reference rule: {med['tokenize (25,000 reviews)'] / ref_tok:.2f}")
    if keras_pad:
        print(f"  pad_sequences / keras: {med['pad_sequences maxlen=300 (25,000)'] / keras_pad:.2f}")


if __name__ == "__main__":
    main()
