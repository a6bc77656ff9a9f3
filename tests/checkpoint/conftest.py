"""Shared fixtures of the checkpoint tests: a small real model and a way to forge a manifest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lstmtext.checkpoint import manifest as mf
from lstmtext.checkpoint import save_checkpoint
from lstmtext.layers import Dense, serialize


@pytest.fixture
def dense_model() -> Dense:
    torch.manual_seed(0)
    layer = Dense(3, activation="sigmoid", name="out")
    layer(torch.ones(1, 4))
    return layer


@pytest.fixture
def saved(tmp_path: Path, dense_model: Dense) -> Path:
    """A committed checkpoint of ``dense_model`` with optimizer state, trainer state, vocab and run info."""
    opt = torch.optim.Adam(dense_model.parameters())
    dense_model(torch.ones(2, 4)).sum().backward()
    opt.step()
    return save_checkpoint(
        tmp_path / "ckpt",
        config=serialize(dense_model),
        weights=dense_model.state_dict(),
        optimizer_state=opt.state_dict(),
        trainer_state={"epoch": 1, "step": 1},
        vocab={"the": 1},
        run_info={"seed": 0},
    )


@pytest.fixture
def commit() -> Callable[[Path], None]:
    """Write a manifest matching whatever files a folder holds now, as an attacker could."""

    def _commit(folder: Path) -> None:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())
                 if p.is_file() and not p.is_symlink() and p.name != mf.MANIFEST}
        mf.write_manifest(folder, files)

    return _commit
