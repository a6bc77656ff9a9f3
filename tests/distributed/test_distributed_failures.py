"""A rank that dies or hangs fails the whole torchrun run quickly, with a clear message; checkpoints survive."""

from __future__ import annotations

import pytest
from ddp_launch import launch, max_weight_diff, read_run

from lstmtext.models.saving import load_model

# Rank 1 misbehaves at global step 8: the third step of epoch 2, after rank 0 saved ckpt-1.
STEP = "8"


@pytest.mark.slow
def test_a_dead_rank_fails_the_run_and_the_last_checkpoint_resumes(tmp_path):
    # A slow torchrun monitor, so that rank 0 sees the lost peer itself before torchrun stops it.
    run = launch(tmp_path / "crash", "--die-at", STEP, nproc=2, timeout=90, monitor_interval=2)
    assert run.returncode != 0
    assert run.seconds < 60, run.output[-3000:]
    assert "rank 1: die at step 8" in run.output
    # torchrun names the rank that failed and how; rank 0 says what happened in our words.
    assert "exitcode  : 17" in run.output, run.output[-3000:]
    assert "rank 0 of 2: the gradient all-reduce of step 9 (epoch 2) failed: another process of the " \
           "distributed run died" in run.output, run.output[-3000:]
    folder = tmp_path / "crash" / "default"
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt-1"]  # no half-written checkpoint next to it
    model = load_model(folder / "ckpt-1")
    assert model.count_params() > 0
    # The checkpoint is complete: one process continues from it to the weights of an uninterrupted run.
    resumed = launch(tmp_path / "resumed", "--resume-from", str(tmp_path / "crash"), "--resume-epoch", "1")
    assert resumed.returncode == 0, resumed.output[-3000:]
    reference = launch(tmp_path / "reference")
    assert reference.returncode == 0, reference.output[-3000:]
    w, h = read_run(tmp_path / "resumed" / "default")
    w_ref, h_ref = read_run(tmp_path / "reference" / "default")
    assert max_weight_diff(w, w_ref) < 1e-5
    assert h["history"]["loss"] == pytest.approx(h_ref["history"]["loss"], rel=1e-5)


@pytest.mark.slow
def test_a_rank_that_stops_answering_fails_the_run_after_the_timeout(tmp_path):
    run = launch(tmp_path / "hang", "--hang-at", STEP, nproc=2, timeout=90, dist_timeout=5)
    assert run.returncode != 0
    assert run.seconds < 60, run.output[-3000:]
    assert "rank 1: hang at step 8" in run.output
    assert "rank 0 of 2: the gradient all-reduce of step 9 (epoch 2) failed" in run.output, run.output[-3000:]
    assert "stopped answering (timeout 5 s, set LSTMTEXT_DIST_TIMEOUT to change it)" in run.output
    assert load_model(tmp_path / "hang" / "default" / "ckpt-1").count_params() > 0
