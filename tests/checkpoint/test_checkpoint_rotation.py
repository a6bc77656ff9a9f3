"""A run's checkpoints: newest valid one found, broken ones skipped with a warning, rotation, cleanup."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from lstmtext.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointWarning,
    checkpoint_name,
    clean_temp_files,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    rotate,
    save_checkpoint,
)

CONFIG = {"class_name": "Dense", "config": {"units": 1}}


def save_step(root, epoch, step):
    return save_checkpoint(root / checkpoint_name(epoch, step), config=CONFIG,
                           weights={"w": torch.full((3,), float(step))}, trainer_state={"step": step})


def test_checkpoint_names_sort_by_age(tmp_path):
    assert checkpoint_name(2, 314) == "ckpt-e0002-s000314"
    assert checkpoint_name(12, 1_234_567) == "ckpt-e0012-s1234567"
    for epoch, step in [(0, 5), (1, 20), (0, 10), (10, 1_000_000), (2, 999_999)]:
        (tmp_path / checkpoint_name(epoch, step)).mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "ckpt-e1-s1").mkdir()  # not a name we produce
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "ckpt-e0000-s000005", "ckpt-e0000-s000010", "ckpt-e0001-s000020", "ckpt-e0002-s999999",
        "ckpt-e0010-s1000000"]
    with pytest.raises(ValueError, match="non-negative integers"):
        checkpoint_name(-1, 0)


def test_latest_skips_broken_newest_with_a_warning_naming_it(tmp_path):
    save_step(tmp_path, 0, 1)
    good = save_step(tmp_path, 0, 2)
    broken = save_step(tmp_path, 1, 3)
    (broken / "model.safetensors").write_bytes(b"garbage")
    uncommitted = save_step(tmp_path, 1, 4)
    os.unlink(uncommitted / "manifest.json")
    with pytest.warns(CheckpointWarning) as record:
        assert latest_checkpoint(tmp_path) == good
    messages = [str(w.message) for w in record]
    assert any(str(uncommitted) in m and "not committed" in m for m in messages)
    assert any(str(broken) in m and "model.safetensors" in m for m in messages)
    assert load_checkpoint(good).trainer_state == {"step": 2}


def test_latest_of_empty_or_missing_root_is_none(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None


def test_latest_cleans_temp_files_of_interrupted_writes(tmp_path):
    ckpt = save_step(tmp_path, 0, 1)
    stray = [ckpt / ".model.safetensors.abc123.tmp", tmp_path / ".x.tmp"]
    for path in stray:
        path.write_bytes(b"half")
    keep = ckpt / "notes.txt"
    keep.write_text("user file")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert latest_checkpoint(tmp_path) == ckpt
    assert not any(p.exists() for p in stray) and keep.exists()
    assert clean_temp_files(tmp_path) == []


def test_rotate_keeps_the_newest_committed_and_removes_older_debris(tmp_path):
    for step in range(1, 6):
        save_step(tmp_path, 0, step)
    debris = save_step(tmp_path, 0, 0)  # an interrupted save older than the newest commit
    os.unlink(debris / "manifest.json")
    in_progress = tmp_path / checkpoint_name(0, 6)  # a save under way, newer than every commit
    in_progress.mkdir()
    deleted = rotate(tmp_path, keep_last=2)
    assert sorted(p.name for p in deleted) == [checkpoint_name(0, s) for s in range(0, 4)]
    assert [p.name for p in list_checkpoints(tmp_path)] == [checkpoint_name(0, s) for s in (4, 5, 6)]
    assert rotate(tmp_path, keep_last=2) == []
    with pytest.raises(ValueError, match="keep_last must be a positive integer"):
        rotate(tmp_path, keep_last=0)


def test_resolve_accepts_a_checkpoint_or_a_root(tmp_path):
    first = save_step(tmp_path, 0, 1)
    second = save_step(tmp_path, 0, 2)
    assert resolve_checkpoint(first) == first
    assert resolve_checkpoint(tmp_path) == second
    with pytest.raises(CheckpointNotFoundError, match="no such checkpoint"):
        resolve_checkpoint(tmp_path / "nope")
    for path in (first, second):
        os.unlink(path / "manifest.json")
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointNotFoundError, match="no valid checkpoint"):
        resolve_checkpoint(tmp_path)


def test_saving_never_replaces_a_folder_of_other_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(CheckpointError, match=r"mine: exists and holds files that are not part of a checkpoint "
                                              r"\(thesis\.tex\)"):
        save_checkpoint(tmp_path / "mine", config=CONFIG, weights={"w": torch.zeros(1)})
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        save_checkpoint(tmp_path / "file", config=CONFIG, weights={"w": torch.zeros(1)})


def test_a_crash_between_the_swap_renames_is_undone(tmp_path):
    target = save_step(tmp_path, 0, 1)
    os.rename(target, tmp_path / f".{target.name}.k3x9q2ab.old")  # the old one moved aside, the new one lost
    (tmp_path / f".{target.name}.zz81kq0p.staging").mkdir()  # and a half-written new one
    with pytest.warns(CheckpointWarning, match="previous checkpoint was put back"):
        assert latest_checkpoint(tmp_path) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    os.rename(target, tmp_path / ".best.k3x9q2ab.old")
    with pytest.warns(CheckpointWarning, match="previous checkpoint was put back"):
        assert load_checkpoint(tmp_path / "best").trainer_state == {"step": 1}


def test_replacing_a_checkpoint_leaves_no_leftovers(tmp_path):
    save_step(tmp_path, 0, 1)
    path = save_checkpoint(tmp_path / "best", config=CONFIG, weights={"w": torch.ones(1)})
    save_checkpoint(path, config=CONFIG, weights={"w": torch.full((1,), 2.0)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", checkpoint_name(0, 1)]
    assert torch.equal(load_checkpoint(path).weights["w"], torch.full((1,), 2.0))
