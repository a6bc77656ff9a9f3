"""``torchrun ... pretrain``: language-model pretraining split over processes by rows gives one process's run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ddp_launch import run_command

from lstmtext.checkpoint import load_checkpoint

WORKER = str(Path(__file__).with_name("lm_ddp_worker.py"))


def _weights_and_state(folder: Path) -> tuple[dict[str, torch.Tensor], list, dict]:
    ckpt = load_checkpoint(folder)
    return ckpt.weights, ckpt.trainer_state.get("carried_state"), json.loads((folder / "run.json").read_text())


@pytest.mark.slow
def test_two_processes_pretrain_as_one_and_resume_with_any_number(tiny_imdb_archive, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    solo = run_command([WORKER, str(tiny_imdb_archive), str(one)])
    assert solo.returncode == 0, solo.output[-4000:]
    run = run_command([WORKER, str(tiny_imdb_archive), str(two)], nproc=2)
    assert run.returncode == 0, run.output[-4000:]
    assert run.output.count("pretrain config:") == 1 and run.output.count("finished:") == 1  # rank 0 prints
    assert "distributed: 2 processes, 8 rows per batch = 4 per process" in run.output
    w1, s1, r1 = _weights_and_state(one)
    w2, s2, r2 = _weights_and_state(two)
    assert sorted(w1) == sorted(w2)
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-5
    for name in ("loss", "val_perplexity"):
        assert r2["metrics"][name] == pytest.approx(r1["metrics"][name], rel=1e-5), name

    # Stopped after its first step by the time budget in two processes, continued in one: the same run.
    part = tmp_path / "part"
    run = run_command([WORKER, str(tiny_imdb_archive), str(part), "--budget", "0"], nproc=2)
    assert run.returncode == 0, run.output[-4000:]
    _, state, info = _weights_and_state(part)
    assert info["finished"] is False and state is not None and state[0][0].shape[0] == 8  # every row's state
    resumed = run_command([WORKER, str(tiny_imdb_archive), str(part), "--resume"])
    assert resumed.returncode == 0, resumed.output[-4000:]
    w3, _, r3 = _weights_and_state(part)
    assert max(float((w1[k] - w3[k]).abs().max()) for k in w1) < 1e-5
    assert r3["metrics"]["val_perplexity"] == pytest.approx(r1["metrics"]["val_perplexity"], rel=1e-5)


@pytest.mark.slow
def test_a_batch_that_does_not_split_evenly_is_refused(tiny_imdb_archive, tmp_path):
    run = run_command(["-m", "lstmtext", "pretrain", "--data", str(tiny_imdb_archive), "--out", str(tmp_path / "lm"),
                       "--preset", "tiny", "--batch-size", "7", "--max-tokens", "300", "--verbose", "0"], nproc=2)
    assert run.returncode != 0
    assert "--batch-size is the global number of rows" in run.output and "7 is not a multiple of 2" in run.output
