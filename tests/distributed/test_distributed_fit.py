"""Two processes under torchrun train exactly like one: weights, metrics and checkpoints (gloo, loopback)."""

from __future__ import annotations

import pytest
import torch
from ddp_launch import launch, max_weight_diff, read_run

VARIANTS = ["default", "sum", "weighted_mean", "two_inputs"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same training (three loss reductions, and a model on a dict of two inputs) in one process and in two
    processes."""
    root = tmp_path_factory.mktemp("ddp")
    one = launch(root / "one", "--variants", ",".join(VARIANTS))
    assert one.returncode == 0, one.output[-4000:]
    two = launch(root / "two", "--variants", ",".join(VARIANTS), nproc=2)
    assert two.returncode == 0, two.output[-4000:]
    return root, two


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_two_processes_give_the_weights_and_metrics_of_one(runs, variant):
    root, _ = runs
    w1, h1 = read_run(root / "one" / variant)
    w2, h2 = read_run(root / "two" / variant)
    assert (h1["world_size"], h2["world_size"]) == (1, 2)
    assert h1["global_step"] == h2["global_step"] == 12  # 2 epochs x ceil(161 / 32)
    assert max_weight_diff(w1, w2) < 1e-5
    # Metrics are summed over ranks at every step: rank 0 reports the one-process numbers.
    assert sorted(h1["history"]) == sorted(h2["history"]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for name, values in h1["history"].items():
        assert h2["history"][name] == pytest.approx(values, rel=1e-5, abs=1e-6), name


@pytest.mark.slow
def test_only_rank_0_prints_and_writes(runs):
    root, two = runs
    assert two.output.count("Training configuration:") == len(VARIANTS)
    assert two.output.count("Distributed: 2 processes (gloo), global batch 32 = 16 samples per process") == len(
        VARIANTS)
    assert two.output.count("Epoch 2/2") == len(VARIANTS)
    assert sorted(p.name for p in (root / "two" / "default").iterdir()) == [
        "ckpt-1", "ckpt-2", "final.safetensors", "history.json"]


@pytest.mark.slow
def test_checkpoints_resume_with_another_number_of_processes(runs, tmp_path):
    """A 2-process checkpoint continues in 1 process, a 1-process one in 3 (uneven shards): same weights."""
    root, _ = runs
    w_ref, h_ref = read_run(root / "one" / "default")
    for nproc, source in ((None, "two"), (3, "one")):
        out = tmp_path / f"resumed-{nproc}"
        run = launch(out, "--resume-from", str(root / source), "--resume-epoch", "1", nproc=nproc)
        assert run.returncode == 0, run.output[-4000:]
        w, h = read_run(out / "default")
        assert h["world_size"] == (nproc or 1)
        assert h["global_step"] == 12
        assert max_weight_diff(w, w_ref) < 1e-5
        for name, values in h_ref["history"].items():
            assert h["history"][name] == pytest.approx(values, rel=1e-5, abs=1e-6), name


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_with_nccl_give_the_weights_of_one(tmp_path):
    """The same check on CUDA: nccl, one GPU per process (picked from LOCAL_RANK)."""
    one = launch(tmp_path / "one")
    assert one.returncode == 0, one.output[-4000:]
    two = launch(tmp_path / "two", nproc=2)
    assert two.returncode == 0, two.output[-4000:]
    assert "Distributed: 2 processes (nccl)" in two.output
    w1, h1 = read_run(tmp_path / "one" / "default")
    w2, h2 = read_run(tmp_path / "two" / "default")
    assert max_weight_diff(w1, w2) < 1e-5
    assert h2["history"]["loss"] == pytest.approx(h1["history"]["loss"], rel=1e-5)
