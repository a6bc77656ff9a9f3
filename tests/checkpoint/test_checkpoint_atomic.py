"""Crash safety with real processes: a writer SIGKILLed at random moments never leaves a checkpoint that
looks committed but is not loadable, never loses the previous checkpoint, and resumes after the newest one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import lstmtext
from lstmtext.checkpoint import CheckpointNotFoundError, latest_checkpoint, list_checkpoints, load_checkpoint

WRITER = Path(__file__).with_name("sigkill_writer.py")
KILLS = 12


def start_writer(root: Path) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(lstmtext.__file__).parents[1]), str(WRITER.parent),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, str(WRITER), str(root)], stdout=subprocess.PIPE, env=env, text=True)
    line = proc.stdout.readline()
    assert line.startswith("ready"), f"writer did not start: {line!r}"
    return proc, int(line.split()[1])


@pytest.mark.slow
def test_sigkill_at_random_moments_never_breaks_a_committed_checkpoint(tmp_path):
    from sigkill_writer import KEEP_LAST, expected_weights, optimizer_state

    rng = random.Random(20240611)
    root = tmp_path / "checkpoints"
    root.mkdir()
    last_step = -1
    interrupted_writes = 0
    best_before = -1
    for kill in range(KILLS):
        proc, start_step = start_writer(root)
        assert start_step == last_step + 1, "resume must continue right after the newest valid checkpoint"
        if kill % 2:  # any moment at all
            time.sleep(rng.uniform(0.0, 1.0))
        else:  # a random moment among a save's file writes (7 files, then the manifest)
            for _ in range(rng.randint(1, 20)):
                proc.stdout.readline()
            time.sleep(rng.uniform(0.0, 0.005))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

        folders = list_checkpoints(root)
        leftovers = [p for f in [root, *folders] for p in f.iterdir() if p.name.startswith(".")]
        committed = [f for f in folders if (f / "manifest.json").exists()]
        interrupted_writes += bool(leftovers)
        assert committed == folders, "a visible checkpoint folder must always be complete"
        if not committed:  # killed before the very first commit: nothing to lose yet
            assert last_step == -1, f"kill {kill}: no committed checkpoint left"
            continue
        assert len(committed) <= KEEP_LAST + 1
        for folder in committed:  # every committed checkpoint verifies, loads, and holds its own step
            ckpt = load_checkpoint(folder)
            step = ckpt.trainer_state["step"]
            assert folder.name.endswith(f"s{step:06d}") and ckpt.vocab == {"step": step}
            for name, want in expected_weights(step).items():
                assert torch.equal(ckpt.weights[name], want), (folder, name)
            want = optimizer_state(step)
            assert ckpt.optimizer_state["param_groups"] == want["param_groups"]
            assert all(torch.equal(ckpt.optimizer_state["state"][0][k], v) for k, v in want["state"][0].items())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "a save was interrupted; the previous checkpoint was put back"
            try:  # replaced in place every step: complete whenever it exists, and it is never lost
                best = load_checkpoint(root / "best")
            except CheckpointNotFoundError:
                best = None
            latest = latest_checkpoint(root)
        assert latest == committed[-1]
        latest_step = int(latest.name[-6:])
        if best is None:
            assert latest_step == 0, "the fixed-path checkpoint was lost"
        else:
            best_step = best.trainer_state["step"]
            # Never older than what it held before (an interrupted replacement puts the previous one back).
            assert best_before <= best_step <= latest_step
            best_before = best_step
            assert torch.equal(best.weights["kernel"], expected_weights(best_step)["kernel"])
        step = load_checkpoint(latest).trainer_state["step"]
        assert step >= last_step, "a kill must never lose the previous checkpoint"
        last_step = step
        assert not [p for f in [root, *list_checkpoints(root)] for p in f.iterdir() if p.name.startswith(".")]
    # The kills must have hit writes in progress, or the test shows nothing.
    assert interrupted_writes >= KILLS // 3, f"only {interrupted_writes} of {KILLS} kills interrupted a write"
    assert last_step >= KILLS // 2, "the writer must make progress between kills"
    print(f"{KILLS} kills, {interrupted_writes} during a write, {last_step + 1} checkpoints committed")
