"""Tutorial model ms/step of two lstmtext source trees, alternated in one run (model-code changes vs a reference).

Each measurement is a fresh process running the keras.io-tutorial model (Embedding(5000, 15), LSTM(10),
Dense(1, sigmoid); 300 ids per review, batch 128, Adam) on fixed random ids: ``fit`` for ``--steps`` steps
after ``--warmup`` steps, timed per step by a callback; the median step is reported. With ``--cpu-time``
each step is timed in process CPU time on one torch thread, which other processes on a shared machine
disturb far less than wall time. A script that calls
``lstmtext.utils.tune_cpu_runtime()`` (where the tree has it) before importing torch is what is timed, so an
old tree that tuned the process at ``import lstmtext`` is compared with a new one that tunes on request.

    python bench/bench_model_overhead.py --tree base=/path/to/old/src --tree new=src --rounds 5 [--cpu-time]

Take the machine-wide lock for timing runs: ``flock <lock> python bench/bench_model_overhead.py ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
import lstmtext
try:
    from lstmtext.utils.runtime import tune_cpu_runtime
    tune_cpu_runtime()
except ImportError:  # a tree that tuned the process at import
    pass
import numpy as np
import torch
from lstmtext.callbacks import Callback
from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models import Sequential
from lstmtext.utils import set_random_seed

steps, warmup, cpu_time = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "cpu"
clock = time.process_time if cpu_time else time.perf_counter
if cpu_time:
    torch.set_num_threads(1)
set_random_seed(1)
rng = np.random.default_rng(1)
n = 128 * (steps + warmup)
x = rng.integers(1, 5000, size=(n, 300)).astype(np.int32)
x[:, :150] = 0  # half padding, as the padded reviews
y = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
model = Sequential([Embedding(5000, 15, input_length=300), LSTM(10), Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
times = []
class Timer(Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.t = clock()
    def on_train_batch_end(self, batch, logs=None):
        times.append(clock() - self.t)
model.fit(x, y, batch_size=128, epochs=1, shuffle=False, verbose=0, callbacks=[Timer()])
print(json.dumps({"ms_per_step": 1000 * statistics.median(times[warmup:])}))
"""


def run(src: str, steps: int, warmup: int, cpu_time: bool = False) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE")}
    env["PYTHONPATH"] = os.path.abspath(src)
    if cpu_time:
        env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps), str(warmup), "cpu" if cpu_time else "wall"],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["ms_per_step"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", required=True, metavar="NAME=SRC",
                    help="a name and the src/ folder of an lstmtext tree (give two or more)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time per step on one torch thread")
    args = ap.parse_args(argv)
    trees = dict(t.split("=", 1) for t in args.tree)
    results: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, src in trees.items():
            results[name].append(run(src, args.steps, args.warmup, args.cpu_time))
            print(f"round {r + 1} {name}: {results[name][-1]:.2f} ms/step", flush=True)
    first = next(iter(trees))
    for name, values in results.items():
        med = statistics.median(values)
        ratio = med / statistics.median(results[first])
        print(f"{name}: median {med:.2f} ms/step over {len(values)} runs ({ratio:.3f}x {first})")


if __name__ == "__main__":
    main()
