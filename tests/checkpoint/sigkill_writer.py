"""Writes checkpoints in a loop until killed, resuming after the newest valid one (used by test_checkpoint_atomic).

Usage: python sigkill_writer.py ROOT. Step ``s``'s checkpoint holds weights filled with ``s``, so a
reader can tell that every committed checkpoint is exactly what was written for its step. Before each
file write it prints ``write <name>`` so that the test can aim kills into the middle of a save; the
save code itself is the package's, unchanged.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

import lstmtext.checkpoint.folder
import lstmtext.checkpoint.manifest
from lstmtext.checkpoint import (
    capture_rng_state,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    make_run_info,
    rotate,
    save_checkpoint,
)

CONFIG = {"class_name": "Dense", "config": {"units": 1}}
KEEP_LAST = 2
SIZE = 1 << 18  # 1 MiB of float32 per tensor


def _announce(write):
    def announced(path, data):
        print(f"write {Path(path).name}", flush=True)
        return write(path, data)

    return announced


def expected_weights(step: int) -> dict[str, torch.Tensor]:
    return {"kernel": torch.full((SIZE,), float(step)), "bias": torch.arange(1000, dtype=torch.int64) + step}


def optimizer_state(step: int) -> dict:
    """Shaped like ``torch.optim.Adam(...).state_dict()`` (a real optimizer's first step takes seconds to warm up)."""
    return {"state": {0: {"step": torch.tensor(float(step)), "exp_avg": torch.full((SIZE,), 0.5 * step),
                          "exp_avg_sq": torch.full((SIZE,), 0.25 * step)}},
            "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-07, "params": [0]}]}


def main(root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped broken checkpoints are expected here
        latest = latest_checkpoint(root)
    step = 0 if latest is None else load_checkpoint(latest).trainer_state["step"] + 1
    print(f"ready {step}", flush=True)
    while True:
        save_checkpoint(root / checkpoint_name(0, step), config=CONFIG, weights=expected_weights(step),
                        optimizer_state=optimizer_state(step),
                        trainer_state={"step": step, "rng": capture_rng_state()},
                        vocab={"step": step}, run_info=make_run_info(seed=step))
        rotate(root, keep_last=KEEP_LAST)
        # A fixed path saved over and over (as ModelCheckpoint(save_best_only=True) does).
        save_checkpoint(root / "best", config=CONFIG, weights=expected_weights(step), trainer_state={"step": step})
        step += 1


if __name__ == "__main__":
    # Only in the writer process: importing this module from a test must not patch the package.
    for _module in (lstmtext.checkpoint.folder, lstmtext.checkpoint.manifest):
        _module.atomic_write_bytes = _announce(_module.atomic_write_bytes)
    main(Path(sys.argv[1]))
