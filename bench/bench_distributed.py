"""Distributed training throughput on one machine: 1 process x 2 threads vs 2 processes x 1 thread (torchrun).

    PATH=$PWD/.venv/bin:$PATH PYTHONPATH=src python bench/bench_distributed.py --rounds 3 --epochs 5

The Keras IMDB tutorial model (Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid), Adam, reviews padded
to 300 tokens, global batch 128, validation_split 0.2) on ``../shared/datasets/aclImdb_v1.tar.gz``. The
data is tokenized once, into a temporary folder of ``.npy`` arrays that every run reads. Each round runs
both set-ups back to back (alternating which goes first) with the same seed; each reports the training
time of every epoch (first batch to last batch, without validation), the whole epoch with validation, and
the test accuracy after the last epoch (evaluated by rank 0), and rank 0's CPU time per epoch (which a
loaded machine changes much less than wall time). Prints one JSON line per run and a summary
of medians; ``--out`` also writes them to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETUPS = {"1x2": (1, 2), "2x1": (2, 1), "1x1": (1, 1)}  # name: (processes, threads per process)


def default_archive() -> str:
    return os.environ.get("LSTMTEXT_IMDB_ARCHIVE") or str(REPO.parent / "shared" / "datasets" / "aclImdb_v1.tar.gz")


def prepare(archive: str, folder: Path) -> None:
    """Tokenize and pad IMDB once (as the tutorial does) into ``folder/*.npy``."""
    import numpy as np

    from lstmtext.datasets import imdb
    from lstmtext.preprocessing.sequence import pad_sequences

    (x_train, y_train), (x_test, y_test) = imdb.load_data(archive, num_words=5000)
    arrays = {"x_train": pad_sequences(x_train, maxlen=300), "y_train": np.asarray(y_train, dtype=np.float32),
              "x_test": pad_sequences(x_test, maxlen=300), "y_test": np.asarray(y_test, dtype=np.float32)}
    for name, arr in arrays.items():
        np.save(folder / f"{name}.npy", arr)


def worker(data: Path, out: Path, epochs: int, threads: int, seed: int, units: int) -> None:
    """One training run (in each process of a torchrun launch): writes the timings from rank 0."""
    import numpy as np
    import torch

    from lstmtext.callbacks import Callback
    from lstmtext.layers import LSTM, Dense, Embedding
    from lstmtext.losses import BinaryCrossentropy
    from lstmtext.models import Sequential
    from lstmtext.optimizers import Adam
    from lstmtext.training.distributed import is_main_process, world_size
    from lstmtext.utils import set_random_seed

    torch.set_num_threads(threads)
    set_random_seed(seed)
    x_train, y_train = np.load(data / "x_train.npy"), np.load(data / "y_train.npy")
    x_test, y_test = np.load(data / "x_test.npy"), np.load(data / "y_test.npy")

    class Timer(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t_epoch = self.t_train = time.perf_counter()
            self.cpu = time.process_time()

        # Validation starts when training ends (no batch hook: one would make fit agree on
        # stop_training after every step, an extra collective).
        def on_test_begin(self, logs=None):
            self.t_train_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            train_s.append(self.t_train_end - self.t_train)
            cpu_s.append(time.process_time() - self.cpu)
            epoch_s.append(now - self.t_epoch)

    train_s: list[float] = []
    cpu_s: list[float] = []  # this process's CPU time per epoch (validation included): load-insensitive
    epoch_s: list[float] = []
    model = Sequential([Embedding(5000, 15, input_length=300), LSTM(units), Dense(1, activation="sigmoid")])
    model.compile(optimizer=Adam(), loss=BinaryCrossentropy(), metrics=["accuracy"])
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=0.2, verbose=0,
                        callbacks=[Timer()])
    fit_s = time.perf_counter() - t0
    if not is_main_process():
        return
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=128, verbose=0)
    n_train = len(x_train) - int(len(x_train) * 0.2)
    out.write_text(json.dumps({
        "processes": world_size(), "threads": threads, "lstm_units": units, "train_samples": n_train,
        "train_s_per_epoch": [round(s, 3) for s in train_s], "epoch_s": [round(s, 3) for s in epoch_s],
        "rank0_cpu_s_per_epoch": [round(s, 3) for s in cpu_s],
        "fit_s": round(fit_s, 2), "test_accuracy": float(test_acc), "test_loss": float(test_loss),
        "val_accuracy": history.history["val_accuracy"], "loss": history.history["loss"],
    }))


def launch(setup: str, data: Path, out: Path, epochs: int, seed: int, units: int, timeout: float) -> dict:
    procs, threads = SETUPS[setup]
    args = [str(Path(__file__).resolve()), "--worker", str(data), "--worker-out", str(out), "--epochs", str(epochs),
            "--threads", str(threads), "--seed", str(seed), "--units", str(units)]
    if procs == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=timeout, env=env, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    result.update(setup=setup, seed=seed, wall_s=round(time.perf_counter() - t0, 1), load_avg=os.getloadavg()[0])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", default=default_archive())
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--units", type=int, default=10, help="LSTM units (the tutorial's 10; more: a heavier step)")
    p.add_argument("--setups", default="1x2,2x1", help="comma-separated, from: " + ", ".join(SETUPS))
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one run")
    p.add_argument("--out", default=None, help="also write all results as JSON here")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        worker(args.worker, args.worker_out, args.epochs, args.threads, args.seed, args.units)
        return

    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        data = Path(tmp)
        prepare(args.archive, data)
        setups = args.setups.split(",")
        for r in range(args.rounds):
            for setup in setups if r % 2 == 0 else setups[::-1]:
                res = launch(setup, data, data / f"{setup}-{r}.json", args.epochs, args.seed, args.units,
                             args.timeout)
                runs.append(res)
                print(json.dumps(res), flush=True)
    summary: dict = {}
    for setup in setups:
        mine = [r for r in runs if r["setup"] == setup]
        # Epoch 1 includes the one-off start (kernel load, first allocations): medians over the others.
        steady = [s for r in mine for s in (r["train_s_per_epoch"][1:] or r["train_s_per_epoch"])]
        epoch = [s for r in mine for s in (r["epoch_s"][1:] or r["epoch_s"])]
        summary[setup] = {
            "median_train_s_per_epoch": round(statistics.median(steady), 2),
            "median_samples_per_s": round(mine[0]["train_samples"] / statistics.median(steady), 1),
            "median_epoch_s_with_validation": round(statistics.median(epoch), 2),
            "median_fit_s": round(statistics.median(r["fit_s"] for r in mine), 1),
            "median_rank0_cpu_s_per_epoch": round(statistics.median(
                s for r in mine for s in r["rank0_cpu_s_per_epoch"][1:] or r["rank0_cpu_s_per_epoch"]), 2),
            "test_accuracy": [round(r["test_accuracy"], 4) for r in mine],
        }
    if "1x2" in summary and "2x1" in summary:
        summary["speedup_2x1_over_1x2"] = round(summary["1x2"]["median_train_s_per_epoch"]
                                                / summary["2x1"]["median_train_s_per_epoch"], 2)
    print(json.dumps(summary), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
