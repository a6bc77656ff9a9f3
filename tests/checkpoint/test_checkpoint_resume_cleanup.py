"""Resuming a run through ``fit(resume_from=root)`` after a crash: a newest checkpoint that does not verify is
skipped with a warning, the previous one is used, and the debris of interrupted saves is deleted."""

from __future__ import annotations

import pytest
from test_checkpoint_training import Interrupt, InterruptAt, fit, make_model

from lstmtext.checkpoint import CheckpointWarning, list_checkpoints
from lstmtext.training.callbacks import ModelCheckpoint


def test_resume_skips_a_broken_newest_checkpoint_and_cleans_leftovers(tmp_path):
    model = make_model()
    callback = ModelCheckpoint(str(tmp_path / "ckpt-e{epoch:04d}-s{batch:06d}"), save_freq=1, keep_last=3)
    with pytest.raises(Interrupt):
        fit(model, callbacks=[callback, InterruptAt(3)])
    older, newest = list_checkpoints(tmp_path)[-2:]
    (newest / "model.safetensors").write_bytes(b"torn write")  # fails its manifest
    debris = [tmp_path / ".ckpt-e0001-s000004.k3j9x2.staging", tmp_path / ".ckpt-e0001-s000002.a1b2c3.deleted"]
    for folder in debris:
        folder.mkdir()
        (folder / "config.json").write_text("{")
    stray = [tmp_path / ".manifest.json.q8w7.tmp", older / ".model.safetensors.z9y8.tmp"]
    for path in stray:
        path.write_bytes(b"half")

    with pytest.warns(CheckpointWarning, match=newest.name):
        fit(make_model(), resume_from=str(tmp_path))
    assert not any(p.exists() for p in debris + stray)
    assert older.exists() and newest.exists()  # nothing committed is deleted; the broken one is only skipped
