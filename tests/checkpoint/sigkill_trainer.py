"""A small real training run (2 epochs, a checkpoint every few steps) that resumes from its newest valid
checkpoint when restarted; used by test_checkpoint_training's SIGKILL test.

Usage: python sigkill_trainer.py ROOT FINAL. Prints ``ready`` once set up, ``epoch <i>`` at each epoch
start, ``write <file>`` before each checkpoint file is written (so kills can be aimed into a save) and
``done`` after writing the final weights to FINAL (a safetensors file). Each announced write waits 20 ms
first, so a kill aimed just after a ``write`` line lands inside the save even on a busy machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import lstmtext.checkpoint.folder
from lstmtext.checkpoint import latest_checkpoint
from lstmtext.layers import LSTM, Dense, Dropout, Embedding
from lstmtext.models import Sequential
from lstmtext.training.callbacks import Callback, ModelCheckpoint
from lstmtext.utils import set_random_seed

EVERY, KEEP_LAST = 3, 2


def _announce(write):
    def announced(path, data):
        print(f"write {Path(path).name}", flush=True)
        time.sleep(0.02)
        return write(path, data)

    return announced


class Announce(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        print(f"epoch {epoch}", flush=True)


def data() -> tuple[np.ndarray, np.ndarray]:
    rs = np.random.RandomState(0)
    x = rs.randint(1, 200, size=(1200, 24))
    x[rs.rand(1200) < 0.3, :6] = 0  # padded rows: masks matter
    return x, (x[:, -1] % 2).astype("float32")


def main(root: Path, final: Path) -> None:
    set_random_seed(7)
    model = Sequential([Embedding(200, 16, mask_zero=True), LSTM(16), Dropout(0.2), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    latest = latest_checkpoint(root)
    x, y = data()
    print("ready", flush=True)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_split=0.2, resume_from=latest,
              callbacks=[Announce(), ModelCheckpoint(str(root / "ckpt-e{epoch:04d}-s{batch:06d}"), save_freq=EVERY,
                                                     keep_last=KEEP_LAST)])
    model.save_weights(final)
    print("done", flush=True)


if __name__ == "__main__":
    # Only in the trainer process: importing this module must not patch the package.
    lstmtext.checkpoint.folder.atomic_write_bytes = _announce(lstmtext.checkpoint.folder.atomic_write_bytes)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
