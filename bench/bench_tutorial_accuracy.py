"""Accuracy of the two reference models on IMDB, over several seeds (the runs take minutes).

    PYTHONPATH=src python bench/bench_tutorial_accuracy.py tutorial --seeds 1 2 3 --archive PATH
    PYTHONPATH=src python bench/bench_tutorial_accuracy.py stacked --seeds 1 --archive PATH

Prints each run's progress (one line per epoch), one JSON line per seed (test accuracy, loss, wall
time) and the median test accuracy, and writes the JSON to ``--out`` if given. The models and
hyper-parameters are those of ``examples/keras_imdb_tutorial.py`` and ``examples/stacked_lstm.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import keras_imdb_tutorial
import stacked_lstm

from lstmtext.utils import atomic_write_json, library_versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("tutorial", "stacked"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--archive", default=keras_imdb_tutorial.default_archive())
    parser.add_argument("--epochs", type=int, default=None, help="default: 5 (tutorial), 3 (stacked)")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args()

    results = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        # The runs print their configuration and one line per epoch (verbose=2) as they go.
        if args.model == "tutorial":
            r = keras_imdb_tutorial.run(args.archive, seed=seed, epochs=args.epochs or 5, verbose=2)
        else:
            r = stacked_lstm.run(args.archive, seed=seed, epochs=args.epochs, verbose=2)
        r.update(seed=seed, wall_s=round(time.perf_counter() - t0, 1))
        results.append(r)
        print(json.dumps(r), flush=True)
    summary = {
        "model": args.model,
        "seeds": args.seeds,
        "test_accuracy": [r["test_accuracy"] for r in results],
        "median_test_accuracy": statistics.median(r["test_accuracy"] for r in results),
        "torch_threads": torch.get_num_threads(),
        "versions": library_versions(),
    }
    print(json.dumps(summary), flush=True)
    if args.out:
        atomic_write_json(args.out, {"summary": summary, "runs": results})


if __name__ == "__main__":
    main()
