"""Save and load times of the seed-2 model (6.3 M parameters) as a checkpoint, against references.

The model: Embedding(20000, 300) -> LSTM(128, return_sequences) -> Dropout(.5) -> LSTM(64) -> Dropout(.5)
-> Dense(1, sigmoid), compiled with Adam and trained one step so the optimizer state exists (a full
save holds weights + 2 Adam slots: ~75 MB). Each figure is the median of ``--repeats`` runs.

Rows:
  lstmtext model.save / load_model    the checkpoint folder with manifest, fsyncs, validation
  lstmtext load_checkpoint            the same folder read and verified, without building a model
  raw safetensors save_file/load      the same tensors, no manifest/fsync/validation (the floor)
  Keras 3 (torch backend) .keras      model.save / keras.saving.load_model of the same architecture

Usage (from the repository root):
    PYTHONPATH=src python bench/checkpoint_save_load.py [--repeats 5] [--no-keras]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load, save_file

from lstmtext.checkpoint import load_checkpoint
from lstmtext.layers import LSTM, Dense, Dropout, Embedding
from lstmtext.models import Sequential, load_model
from lstmtext.utils import set_random_seed

VOCAB, EMB, LEN = 20000, 300, 200


def seed2_model() -> Sequential:
    set_random_seed(2)
    model = Sequential([Embedding(VOCAB, EMB), LSTM(128, return_sequences=True), Dropout(0.5), LSTM(64),
                        Dropout(0.5), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.RandomState(0).randint(1, VOCAB, size=(8, LEN))
    model.fit(x, np.ones(8, dtype="float32"), batch_size=8, epochs=1, verbose=0)
    return model


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-keras", action="store_true")
    args = parser.parse_args()
    model = seed2_model()
    print(f"params: {model.count_params():,}")
    tmp = Path(tempfile.mkdtemp(prefix="ckpt-bench-"))
    rows = []

    path = tmp / "ckpt"
    rows.append(("lstmtext model.save", timed(lambda: model.save(path), args.repeats)))
    size = sum(p.stat().st_size for p in path.iterdir())
    rows.append(("lstmtext load_model", timed(lambda: load_model(path), args.repeats)))
    rows.append(("lstmtext load_checkpoint", timed(lambda: load_checkpoint(path), args.repeats)))
    loaded = load_model(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))

    tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
    tensors.update({f"opt.{k}": v.detach().clone() for k, v in model.optimizer.state_dict().items()})
    raw = tmp / "raw.safetensors"
    rows.append(("raw safetensors save_file", timed(lambda: save_file(tensors, raw), args.repeats)))
    # load(bytes) reads everything, as a real load must (load_file maps the file lazily and reads nothing yet).
    rows.append(("raw safetensors load(read_bytes)", timed(lambda: load(raw.read_bytes()), args.repeats)))

    if not args.no_keras:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras

        keras.utils.set_random_seed(2)
        km = keras.Sequential([keras.Input((LEN,), dtype="int32"), keras.layers.Embedding(VOCAB, EMB),
                               keras.layers.LSTM(128, return_sequences=True), keras.layers.Dropout(0.5),
                               keras.layers.LSTM(64), keras.layers.Dropout(0.5),
                               keras.layers.Dense(1, activation="sigmoid")])
        km.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        km.fit(np.random.RandomState(0).randint(1, VOCAB, size=(8, LEN)), np.ones(8), batch_size=8, verbose=0)
        kpath = tmp / "model.keras"
        rows.append(("Keras 3 (torch) model.save .keras", timed(lambda: km.save(kpath), args.repeats)))
        rows.append(("Keras 3 (torch) load_model .keras", timed(lambda: keras.saving.load_model(kpath),
                                                                 args.repeats)))
    print(f"checkpoint folder: {size / 1e6:.1f} MB (weights + Adam state + JSON)")
    print(f"{'operation':40s} {'median s':>9s}")
    for name, seconds in rows:
        print(f"{name:40s} {seconds:9.3f}")


if __name__ == "__main__":
    main()
