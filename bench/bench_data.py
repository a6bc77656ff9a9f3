"""Data pipeline timings on the real IMDB archive, each beside a reference measured in the same run.

- first ``imdb.load_data`` (parse the 56 MB archive, rank, write the cache) vs the reference Keras-format
  build script (``../shared/peers/build_imdb_keras.py``: parse + rank + save; then its ``load_data``);
- cached ``imdb.load_data``;
- ``pad_sequences(x_train, maxlen=300)`` vs ``keras.utils.pad_sequences`` (if Keras is installed);
- the tokenizer rule vs its textbook ``re.findall`` form, and ``Tokenizer.texts_to_sequences``, on the
  25,000 raw training reviews.

Wall and CPU seconds are both reported: on a busy machine CPU time is the steadier figure. Run from
the repository root:

    PYTHONPATH=src python bench/bench_data.py --repeats 3

The archive is ``$LSTMTEXT_IMDB_ARCHIVE`` or ``../shared/datasets/aclImdb_v1.tar.gz``. Figures are the
median and minimum of ``--repeats`` runs; timings on shared machines vary, so compare the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import resource
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


def _cpu() -> float:
    # This process's CPU time plus that of finished child processes (the reference script).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _timed(fn):
    """Run ``fn``; returns ((wall seconds, CPU seconds), its result)."""
    t0, c0 = time.perf_counter(), _cpu()
    out = fn()
    return (time.perf_counter() - t0, _cpu() - c0), out


def _one_repeat(archive: str, peer: Path, record) -> None:
    from lstmtext.data.archive import read_archive
    from lstmtext.datasets import imdb
    from lstmtext.preprocessing.sequence import pad_sequences
    from lstmtext.text import tokenize

    with tempfile.TemporaryDirectory() as cache:
        timing, data = _timed(lambda: imdb.load_data(archive, cache_dir=cache, progress=False))
        record("load_data, first (parse + cache)", timing)
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

    results: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, timing: tuple[float, float]) -> None:
        results.setdefault(name, []).append(timing)
        print(f"  {name}: {timing[0]:.3f} s wall, {timing[1]:.3f} s CPU", flush=True)

    print(f"load average before: {os.getloadavg()[0]:.1f}")
    for r in range(args.repeats):
        print(f"repeat {r + 1}/{args.repeats}")
        _one_repeat(args.archive, Path(args.peer), record)
    print(f"load average after: {os.getloadavg()[0]:.1f}")

    # Wall time depends on what else runs on the machine; CPU time much less (single-threaded code).
    print(f"\nmedian and min of {args.repeats} (archive {args.archive}):")
    width = max(map(len, results))
    print(f"  {'':{width}}  {'wall med':>9} {'wall min':>9} {'CPU med':>9} {'CPU min':>9}")
    med = {}
    for name, values in results.items():
        wall, cpu = [v[0] for v in values], [v[1] for v in values]
        med[name] = statistics.median(cpu)
        print(
            f"  {name:{width}}  {statistics.median(wall):9.3f} {min(wall):9.3f} {statistics.median(cpu):9.3f} "
            f"{min(cpu):9.3f}"
        )
    print("ratios of median CPU times:")
    for ours, ref in (
        ("load_data, first (parse + cache)", "reference build script (parse + rank + save)"),
        ("load_data, cached", "reference load_data (its npz)"),
        ("tokenize (25,000 reviews)", "reference tokenize rule (25,000 reviews)"),
        ("pad_sequences maxlen=300 (25,000)", "keras pad_sequences maxlen=300 (25,000)"),
    ):
        if ours in med and ref in med:
            print(f"  {ours} / {ref}: {med[ours] / med[ref]:.2f}")


if __name__ == "__main__":
    main()
