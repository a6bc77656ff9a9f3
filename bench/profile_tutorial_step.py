"""Where one training step of the tutorial model goes: torch-profiler self times per op, per step.

Model: Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid), Adam, binary cross-entropy, batch 128,
300 random token ids per row (the padded IMDB shape). Prints the median step time of plain ``fit`` epochs
(no profiler), then the profiled epoch's ops by self CPU time per step (the profiler adds a little per op).

Run from the repository root (under the benchmark lock on a shared machine):
    PYTHONPATH=src python bench/profile_tutorial_step.py [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models import Sequential


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="training steps per epoch")
    ap.add_argument("--rounds", type=int, default=3, help="unprofiled epochs timed (median reported)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = 128 * args.steps
    x, y = rng.integers(1, 5000, (n, 300)), rng.integers(0, 2, (n,)).astype("float32")
    torch.manual_seed(0)
    model = Sequential([Embedding(5000, 15), LSTM(10), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=128, verbose=0)  # warm-up: kernel load, allocations
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=128, verbose=0)
        times.append((time.perf_counter() - start) / args.steps * 1e3)
    print(f"{torch.get_num_threads()} threads; ms/step without profiler: median {statistics.median(times):.2f} "
          f"(rounds: {', '.join(f'{t:.2f}' for t in times)})")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    print(f"profiled: {total / 1e3 / args.steps:.2f} ms/step of self CPU time in ops")
    print("| op | self ms / step | share |")
    print("|---|---|---|")
    for e in rows[:14]:
        per_step, share = e.self_cpu_time_total / 1e3 / args.steps, 100 * e.self_cpu_time_total / total
        print(f"| {e.key} | {per_step:.2f} | {share:.0f} % |")


if __name__ == "__main__":
    main()
