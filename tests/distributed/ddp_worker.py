"""The training script the distributed tests launch with torchrun (and with plain python for the reference).

    torchrun --nproc-per-node 2 ddp_worker.py OUT [--variants default,sum] [--resume-epoch 1 --resume-from DIR]
             [--die-at STEP | --hang-at STEP]

For each variant (a loss reduction), seeds everything, trains Embedding -> LSTM -> Dense(sigmoid) on a
generated dataset (identical on every rank) for 2 epochs with the global batch 32 and writes, from rank 0
only: OUT/<variant>/ckpt-<epoch> after every epoch (ModelCheckpoint), OUT/<variant>/final.safetensors and
OUT/<variant>/history.json. 202 samples with validation_split=0.2 leave 161 to train on: the last global
batch has 1 sample, so one rank has nothing to compute on that step.

``--die-at STEP`` makes rank 1 vanish (``os._exit``, no cleanup, like a crash) at global step STEP;
``--hang-at STEP`` makes it stop answering (sleep) instead; ``--kill-rank0-at STEP`` SIGKILLs rank 0, the
one that writes the checkpoints (like an OOM kill).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save_file

from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models.sequential import Sequential
from lstmtext.training.callbacks import Callback, ModelCheckpoint
from lstmtext.training.distributed import is_main_process, rank, world_size
from lstmtext.training.losses import BinaryCrossentropy
from lstmtext.utils import set_random_seed

VOCAB, MAXLEN, SAMPLES, BATCH, EPOCHS = 60, 12, 202, 32, 2
VARIANTS = {
    # name: (loss reduction, per-sample weights, L2 + activity regularization)
    "default": ("sum_over_batch_size", True, True),
    "sum": ("sum", True, True),
    "weighted_mean": ("mean_with_sample_weight", True, False),
    # a Functional model on a dict of two inputs (the first and second halves of each row), sharing an Embedding
    "two_inputs": ("sum_over_batch_size", False, False),
}


def make_data(n: int = SAMPLES, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pre-padded token ids ``(n, MAXLEN)``, a learnable 0/1 label and sample weights in [0.5, 2)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, size=(n, MAXLEN))
    lengths = rng.integers(3, MAXLEN + 1, size=n)
    x[np.arange(MAXLEN)[None, :] < (MAXLEN - lengths)[:, None]] = 0
    y = (x.sum(axis=1) / lengths > VOCAB / 2).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=n).astype(np.float32)
    return x, y, w


def build_two_input_model() -> Any:
    import lstmtext

    head, tail = lstmtext.Input(shape=(None,), name="head"), lstmtext.Input(shape=(None,), name="tail")
    emb = Embedding(VOCAB, 8, mask_zero=True)
    both = lstmtext.layers.Concatenate()([LSTM(4)(emb(head)), LSTM(4)(emb(tail))])
    return lstmtext.Model({"head": head, "tail": tail}, Dense(1, activation="sigmoid")(both))


def build_model(regularized: bool) -> Sequential:
    reg = "l2" if regularized else None
    return Sequential([Embedding(VOCAB, 8, mask_zero=True),
                       LSTM(6, kernel_regularizer=reg, activity_regularizer=reg),
                       Dense(1, activation="sigmoid")])


class Misbehave(Callback):
    """One rank dies (``os._exit``), is killed (SIGKILL) or stops answering (sleeps) at a global step."""

    def __init__(self, step: int, how: str, who: int = 1) -> None:
        super().__init__()
        self.step, self.how, self.who = step, how, who

    def on_train_batch_begin(self, batch, logs=None):
        if rank() == self.who and self.model.train_state.global_step == self.step:
            print(f"rank {self.who}: {self.how} at step {self.step}", flush=True)
            if self.how == "die":
                os._exit(17)
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(600)


def train(out: Path, variant: str, args: argparse.Namespace) -> None:
    reduction, weighted, regularized = VARIANTS[variant]
    set_random_seed(1234)
    x, y, w = make_data()
    model = build_model(regularized) if variant != "two_inputs" else build_two_input_model()
    if variant == "two_inputs":
        x = {"head": x[:, :MAXLEN // 2], "tail": x[:, MAXLEN // 2:]}
    model.compile(optimizer="adam", loss=BinaryCrossentropy(reduction=reduction), metrics=["accuracy"])
    callbacks: list[Callback] = [ModelCheckpoint(str(out / "ckpt-{epoch}"))]
    if args.die_at is not None:
        callbacks.append(Misbehave(args.die_at, "die"))
    if args.kill_rank0_at is not None:
        callbacks.append(Misbehave(args.kill_rank0_at, "kill", who=0))
    if args.hang_at is not None:
        callbacks.append(Misbehave(args.hang_at, "hang"))
    resume = None if args.resume_from is None else str(args.resume_from / variant / f"ckpt-{args.resume_epoch}")
    history = model.fit(x, y, sample_weight=w if weighted else None, batch_size=BATCH, epochs=EPOCHS,
                        validation_split=0.2, verbose=2, callbacks=callbacks, resume_from=resume)
    if is_main_process():
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(out / "final.safetensors"))
        (out / "history.json").write_text(json.dumps({
            "history": history.history, "world_size": world_size(), "global_step": model.train_state.global_step}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--variants", default="default")
    p.add_argument("--resume-from", type=Path, default=None, help="an OUT folder of an earlier run")
    p.add_argument("--resume-epoch", type=int, default=1)
    p.add_argument("--die-at", type=int, default=None)
    p.add_argument("--hang-at", type=int, default=None)
    p.add_argument("--kill-rank0-at", type=int, default=None)
    args = p.parse_args(argv)
    for variant in args.variants.split(","):
        out = args.out / variant
        out.mkdir(parents=True, exist_ok=True)
        train(out, variant, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
