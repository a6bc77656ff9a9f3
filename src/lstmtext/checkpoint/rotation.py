"""The checkpoints of a training run: naming, discovery of the newest valid one, rotation, cleanup.

A run keeps its checkpoints as sibling folders under one root, named by epoch and global step
(``ckpt-e0002-s000314``) so that name order is age order. A new checkpoint is written next to the
previous ones and :func:`rotate` deletes the old ones only after it is committed; deletion first
renames a folder to a hidden name, so a folder half-deleted by a crash is never taken for a checkpoint.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

from lstmtext.checkpoint.errors import CheckpointError, CheckpointNotFoundError, CheckpointWarning
from lstmtext.checkpoint.folder import delete_checkpoint, recover_interrupted_save
from lstmtext.checkpoint.manifest import MANIFEST, verify_checkpoint

_CKPT = re.compile(r"^ckpt-e(\d{4,})-s(\d{6,})$")
#: Temp files left by an interrupted ``lstmtext.utils.io.atomic_write_bytes``: ``.<name>.<random>.tmp``.
_TEMP = re.compile(r"^\..+\.tmp$")
#: Hidden folders of an interrupted save or delete: ``.<name>.<random>.staging`` / ``.old`` / ``.deleted``.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.(?P<kind>staging|old|deleted)$")


def checkpoint_name(epoch: int, global_step: int) -> str:
    """The folder name of a run's checkpoint: ``checkpoint_name(2, 314) == "ckpt-e0002-s000314"``."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (epoch, global_step)):
        raise ValueError(f"checkpoint_name: epoch and global_step must be non-negative integers, "
                         f"got {epoch!r}, {global_step!r}")
    return f"ckpt-e{epoch:04d}-s{global_step:06d}"


def list_checkpoints(root: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint folders under ``root`` (committed or not), oldest first by (epoch, step).

    Args:
        root: the run's checkpoint root; a missing root has none.

    Returns:
        The folders whose names :func:`checkpoint_name` could have produced.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        m = _CKPT.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink():
            found.append(((int(m.group(1)), int(m.group(2))), entry))
    return [path for _, path in sorted(found)]


def clean_temp_files(root: str | os.PathLike[str]) -> list[Path]:
    """Tidy up after interrupted saves in ``root`` and its checkpoint folders.

    Deletes temp files and staging folders; a checkpoint that was being replaced is deleted when its
    replacement is in place, and put back (:func:`recover_interrupted_save`) when it is not. Only call
    this while no other process writes checkpoints under ``root``.

    Returns:
        The files and folders deleted.
    """
    removed = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for entry in sorted(root.iterdir()):
        m = _LEFTOVER.match(entry.name)
        if not m or not entry.is_dir() or entry.is_symlink():
            continue
        if m["kind"] == "old" and not (root / m["name"]).exists() and recover_interrupted_save(root / m["name"]):
            continue
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    for folder in [root, *list_checkpoints(root)]:
        for entry in folder.iterdir():
            if _TEMP.match(entry.name) and entry.is_file() and not entry.is_symlink():
                try:
                    entry.unlink()
                    removed.append(entry)
                except FileNotFoundError:
                    pass
    return removed


def latest_checkpoint(root: str | os.PathLike[str], *, clean: bool = True) -> Path | None:
    """The newest checkpoint under ``root`` whose manifest verifies, or None.

    Newer folders that are not committed or do not verify are skipped with a :class:`CheckpointWarning`
    naming them (they are left on disk for inspection; :func:`rotate` removes them later).

    Args:
        root: the run's checkpoint root.
        clean: first delete temp files of interrupted writes (:func:`clean_temp_files`).

    Returns:
        The folder, or None when there is no valid checkpoint.

    >>> latest_checkpoint("runs/imdb/checkpoints")  # doctest: +SKIP
    PosixPath('runs/imdb/checkpoints/ckpt-e0002-s000314')
    """
    if clean:
        clean_temp_files(root)
    for path in reversed(list_checkpoints(root)):
        try:
            verify_checkpoint(path)
        except CheckpointError as e:
            warnings.warn(f"skipping checkpoint {path}: {e}", CheckpointWarning, stacklevel=2)
            continue
        return path
    return None


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint folder itself, or the newest valid one under a run's checkpoint root.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist, or is a root with no valid checkpoint.
    """
    path = Path(path)
    if not path.exists() and not recover_interrupted_save(path):
        raise CheckpointNotFoundError(path, "no such checkpoint folder or checkpoint root")
    if (path / MANIFEST).exists() or not list_checkpoints(path):
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise CheckpointNotFoundError(path, "no valid checkpoint under this root")
    return found


def rotate(root: str | os.PathLike[str], keep_last: int) -> list[Path]:
    """Keep the ``keep_last`` newest committed checkpoints under ``root``; delete older ones.

    Folders without a manifest that are older than the newest committed checkpoint (debris of an
    interrupted save) are deleted too; newer uncommitted ones are left alone (one may be being written).

    Args:
        root: the run's checkpoint root.
        keep_last: how many committed checkpoints to keep (>= 1).

    Returns:
        The folders deleted.
    """
    if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1:
        raise ValueError(f"rotate: keep_last must be a positive integer, got {keep_last!r}")
    folders = list_checkpoints(root)
    committed = [p for p in folders if (p / MANIFEST).is_file()]
    if not committed:
        return []
    keep = set(committed[-keep_last:])
    newest = folders.index(committed[-1])
    doomed = [p for p in folders[:newest] if p not in keep]
    for path in doomed:
        delete_checkpoint(path)
    return doomed
