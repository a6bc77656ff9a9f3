"""Corpus build time: the IMDB pretraining corpus tokenized with the Python word lookups, then the compiled ones.

Both builds read the same documents (``lstmtext.lm.documents.iter_documents``: the labelled training reviews
and ``train/unsup``) twice (word counts, then encoding into uint16 shards) and must give the same ids; the
report is the wall and CPU seconds of each, in one process.

    flock $BENCH_LOCK .venv/bin/python bench/bench_lm_corpus.py --archive PATH/aclImdb_v1.tar.gz
"""

from __future__ import annotations

import argparse
import tempfile
import time

from lstmtext.utils.runtime import tune_cpu_runtime

tune_cpu_runtime()  # before torch is imported, as `lstmtext pretrain` does

import numpy as np  # noqa: E402

from lstmtext.kernels.build import load_ops  # noqa: E402
from lstmtext.lm.corpus import build_corpus  # noqa: E402
from lstmtext.lm.documents import iter_documents  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True)
    ap.add_argument("--num-words", type=int, default=30000)
    args = ap.parse_args()
    ops = load_ops()
    if ops is None:
        raise SystemExit("the compiled kernel is not available here; nothing to compare")
    first = None
    for name, o in (("python lookups", None), ("compiled lookups", ops)):
        with tempfile.TemporaryDirectory() as d:
            wall, cpu = time.perf_counter(), time.process_time()
            corpus = build_corpus(lambda: iter_documents(args.archive), f"{d}/corpus", num_words=args.num_words,
                                  ops=o)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            ids = np.concatenate([np.asarray(m) for m in corpus.train.maps])
            same = "" if first is None else f", same ids as the Python build: {bool(np.array_equal(ids, first))}"
            first = ids if first is None else first
            print(f"{name}: {wall:.1f} s wall, {cpu:.1f} s CPU; {corpus.info['documents']:,} documents, "
                  f"{corpus.info['tokens']['train']:,} training tokens{same}", flush=True)


if __name__ == "__main__":
    main()
