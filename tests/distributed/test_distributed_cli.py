"""``torchrun -m lstmtext train``: the command line trains in every process, rank 0 alone prints and saves."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from ddp_launch import run_command

from lstmtext.checkpoint import load_checkpoint, verify_checkpoint
from lstmtext.cli import main

ARGS = ["--preset", "keras-imdb", "--num-words", "200", "--maxlen", "40", "--batch-size", "16", "--epochs", "2",
        "--seed", "7", "--verbose", "2"]


@pytest.mark.slow
def test_torchrun_lstmtext_train_matches_one_process_and_saves_once(tiny_imdb_archive, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(one), *ARGS]) == 0
    run = run_command(["-m", "lstmtext", "train", "--data", str(tiny_imdb_archive), "--out", str(two), *ARGS],
                      nproc=2)
    assert run.returncode == 0, run.output[-4000:]
    assert run.output.count("Distributed: 2 processes (gloo), global batch 16 = 8 samples") == 1
    assert run.output.count("Trainable params") == 1 and run.output.count(f"saved {two}") == 1
    verify_checkpoint(two)
    w1, w2 = load_checkpoint(one).weights, load_checkpoint(two).weights
    assert sorted(w1) == sorted(w2)
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-5
    m1 = json.loads((one / "run.json").read_text())
    m2 = json.loads((two / "run.json").read_text())
    for name, values in m1["metrics"].items():
        assert m2["metrics"][name] == pytest.approx(values, rel=1e-5), name
    assert m2["test_metrics"] == pytest.approx(m1["test_metrics"], rel=1e-5)
