"""Saving and loading one checkpoint folder.

A checkpoint is a folder::

    config.json            the model's architecture ({"class_name", "config"}, Keras's envelope)
    model.safetensors      the weights, on CPU
    optimizer.safetensors  optimizer (and other trainer) tensors             (optional)
    trainer.json           epoch, step, history, RNG states, optimizer scalars (optional)
    vocab.json             the tokenizer / vocabulary                          (optional)
    run.json               command line, seed, library versions, device, metrics (optional)
    manifest.json          size + sha256 of each file above; written last: the commit marker

Every file is written to a temp name in a hidden staging folder next to the target, fsynced and
renamed; ``manifest.json`` goes last; then the staging folder is renamed to the target (an existing
checkpoint there is moved aside first and deleted only after the swap) and the parent is fsynced.
A crash at any moment leaves the target either complete or as it was (or, between the two renames
of a replacement, moved aside, which :func:`recover_interrupted_save` puts back); leftovers are
hidden folders that :func:`~lstmtext.checkpoint.clean_temp_files` removes. Loading reads only JSON and
safetensors, validated before use: no pickle, no code.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lstmtext.checkpoint import limits
from lstmtext.checkpoint import manifest as mf
from lstmtext.checkpoint.errors import (
    CheckpointConfigError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointWarning,
    CorruptFileError,
    WeightMismatchError,
)
from lstmtext.checkpoint.safejson import check_keys, check_type, dumps, parse_json, read_bounded
from lstmtext.checkpoint.tensorfile import decode_tensors, encode_tensors
from lstmtext.checkpoint.tree import decode_tree, encode_tree
from lstmtext.utils.io import atomic_write_bytes, fsync_dir
from lstmtext.utils.versions import library_versions

CONFIG, WEIGHTS, OPTIMIZER, TRAINER, VOCAB, RUN = (
    "config.json", "model.safetensors", "optimizer.safetensors", "trainer.json", "vocab.json", "run.json")
KNOWN_FILES = (CONFIG, WEIGHTS, OPTIMIZER, TRAINER, VOCAB, RUN)
#: Made from a checkpoint and kept in its folder (the run report, the default ONNX export); they go when
#: the checkpoint is replaced, so their presence does not stop a save.
DERIVED_ENTRIES = ("report", "model.onnx", "model.onnx.json")
TRAINER_FORMAT = "lstmtext.trainer"

#: Size, depth and count limits of each JSON file (:mod:`lstmtext.checkpoint.limits`); weights files are
#: bounded by their manifest entry.
JSON_LIMITS = limits.JSON_LIMITS
_NO_CAP = 1 << 44
#: Hidden sibling folders of a save in progress (``.<name>.<random>.staging``), of a checkpoint being
#: replaced (``.<name>.<random>.old``) and of one being deleted (``.<name>.<random>.deleted``).
STAGING_SUFFIX, OLD_SUFFIX, DELETED_SUFFIX = ".staging", ".old", ".deleted"


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: the folder.
        config: the model's ``{"class_name", "config"}``.
        weights: ``{name: tensor}`` on the requested device.
        optimizer_state: the optimizer's ``state_dict()`` (ready for ``load_state_dict``), or None.
        trainer_state: the trainer's state (epoch, step, history, RNG states ...), or None.
        vocab: the vocabulary / tokenizer config, or None.
        run_info: the ``run.json`` record, or None.
        manifest: the manifest it was verified against (None when loaded with ``verify=False``).
    """

    path: Path
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    trainer_state: dict[str, Any] | None = None
    vocab: Any = None
    run_info: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = field(default=None, repr=False)


def check_model_config(config: Any, *, file: str | os.PathLike[str]) -> dict[str, Any]:
    """Check the ``{"class_name": str, "config": dict}`` envelope of a model config.

    Raises:
        CheckpointConfigError: naming ``file`` and what is wrong.
    """
    if not isinstance(config, dict):
        raise CheckpointConfigError(file, f"must be a JSON object, got {type(config).__name__}")
    if not isinstance(config.get("class_name"), str) or not isinstance(config.get("config"), dict):
        raise CheckpointConfigError(file, "must be {\"class_name\": <string>, \"config\": <object>}, got keys "
                                          f"{sorted(config)[:10]}")
    limits.check_config_schema(config, file=file)
    return config


def make_run_info(*, seed: int | None = None, device: str | torch.device | None = None,
                  metrics: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The ``run.json`` record: command line, seed, library versions, device, metrics history.

    Args:
        seed: the run's seed.
        device: where it trained.
        metrics: e.g. Keras's ``history.history`` (``{"loss": [...], "val_accuracy": [...]}``).
        **extra: anything else JSON-able (e.g. the resolved training config).

    Returns:
        A dict for :func:`save_checkpoint`'s ``run_info``.
    """
    return {
        "command": list(sys.argv),
        "seed": seed,
        "library_versions": library_versions(),
        "device": None if device is None else str(device),
        "metrics": dict(metrics or {}),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def save_checkpoint(
    directory: str | os.PathLike[str],
    *,
    config: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any] | None = None,
    trainer_state: Mapping[str, Any] | None = None,
    vocab: Any = None,
    run_info: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (see the module docstring for the layout and protocol).

    Saving over an existing checkpoint replaces it only once the new one is complete; a folder holding
    anything but checkpoint files is never replaced.

    Args:
        directory: the folder (created with its parents).
        config: the model's ``{"class_name", "config"}`` (e.g. ``lstmtext.layers.serialize(model)``).
        weights: ``{name: tensor}``, on any device (stored on CPU).
        optimizer_state: ``optimizer.state_dict()``; its tensors go to ``optimizer.safetensors``,
            the rest to ``trainer.json``.
        trainer_state: JSON-able trainer state (tensors allowed: they go to ``optimizer.safetensors``),
            e.g. ``{"epoch": 2, "step": 314, "rng": capture_rng_state()}``.
        vocab: JSON-able vocabulary / tokenizer config.
        run_info: JSON-able run record, e.g. :func:`make_run_info`.

    Returns:
        The folder's path.

    Raises:
        CheckpointConfigError: ``config`` is not a model config envelope.
        CheckpointError: a value cannot be stored (naming it).

    >>> save_checkpoint("out/ckpt", config={"class_name": "Dense", "config": {"units": 1}},
    ...                 weights={"kernel": torch.zeros(4, 1), "bias": torch.zeros(1)})  # doctest: +SKIP
    """
    directory = Path(directory)
    check_model_config(config, file=directory / CONFIG)
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{directory / WEIGHTS}: weights must be a mapping name -> tensor, "
                              f"got {type(weights).__name__}")
    files: dict[str, bytes] = {
        CONFIG: dumps(encode_tree(dict(config))),
        WEIGHTS: encode_tensors(weights, file=directory / WEIGHTS, metadata={"format": "pt"}),
    }
    if optimizer_state is not None or trainer_state is not None:
        tensors: dict[str, torch.Tensor] = {}
        trainer = {
            "format": TRAINER_FORMAT,
            "version": 1,
            "state": None if trainer_state is None else encode_tree(dict(trainer_state), tensors, prefix="state/"),
            "optimizer": None if optimizer_state is None else encode_tree(dict(optimizer_state), tensors,
                                                                          prefix="optimizer/"),
        }
        if tensors:
            files[OPTIMIZER] = encode_tensors(tensors, file=directory / OPTIMIZER)
        files[TRAINER] = dumps(trainer)
    if vocab is not None:
        files[VOCAB] = dumps(encode_tree(vocab))
    if run_info is not None:
        files[RUN] = dumps(encode_tree(dict(run_info)))

    directory.parent.mkdir(parents=True, exist_ok=True)
    _check_replaceable(directory)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=STAGING_SUFFIX, dir=directory.parent))
    try:
        for name, data in files.items():
            atomic_write_bytes(staging / name, data)
        mf.write_manifest(staging, files)  # the commit marker, last
        _swap_into_place(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _check_replaceable(directory: Path) -> None:
    """Only an lstmtext checkpoint (or an empty folder) may be replaced: never a folder of other files."""
    if not directory.exists() and not directory.is_symlink():
        return
    if not directory.is_dir() or directory.is_symlink():
        raise CheckpointError(f"{directory}: exists and is not a checkpoint folder; refusing to replace it")
    foreign = sorted(p.name for p in directory.iterdir()
                     if p.name not in (*KNOWN_FILES, *DERIVED_ENTRIES, mf.MANIFEST) and not p.name.endswith(".tmp"))
    if foreign:
        raise CheckpointError(f"{directory}: exists and holds files that are not part of a checkpoint "
                              f"({', '.join(foreign[:5])}); refusing to replace it")


def _swap_into_place(staging: Path, directory: Path) -> None:
    """Rename the complete ``staging`` folder to ``directory``; an existing checkpoint there is moved aside
    first and deleted only once the new one is in place (:func:`recover_interrupted_save` undoes a crash
    between the two renames)."""
    parent = directory.parent
    fsync_dir(staging)
    if directory.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=OLD_SUFFIX, dir=parent))
        os.replace(directory, old)  # an empty directory as the target of a directory rename is replaced
        os.rename(staging, directory)
        fsync_dir(parent)
        delete_checkpoint(old)
    else:
        os.rename(staging, directory)
    fsync_dir(parent)


def delete_checkpoint(path: str | os.PathLike[str]) -> None:
    """Delete a checkpoint folder: renamed to a hidden name first (atomic), so a crash midway never leaves
    a half-deleted folder under its own name."""
    path = Path(path)
    if not path.exists():
        return
    doomed = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=DELETED_SUFFIX, dir=path.parent))
    os.replace(path, doomed)
    fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def recover_interrupted_save(directory: str | os.PathLike[str]) -> bool:
    """Put back the previous checkpoint of ``directory`` if a crash left it moved aside and nothing in place.

    Returns:
        True when a checkpoint was put back (a :class:`CheckpointWarning` says so).
    """
    directory = Path(directory)
    if directory.exists() or not directory.parent.is_dir():
        return False
    prefix = f".{directory.name}."
    candidates = sorted((p for p in directory.parent.iterdir()
                         if p.name.startswith(prefix) and p.name.endswith(OLD_SUFFIX)
                         and (p / mf.MANIFEST).is_file()), key=lambda p: p.stat().st_mtime)
    if not candidates:
        return False
    os.rename(candidates[-1], directory)
    fsync_dir(directory.parent)
    warnings.warn(f"{directory}: a save was interrupted; the previous checkpoint was put back",
                  CheckpointWarning, stacklevel=2)
    return True


def load_checkpoint(
    directory: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    verify: bool = True,
    expected_weights: Mapping[str, Sequence[int] | torch.Tensor] | None = None,
    load_training_state: bool = True,
) -> Checkpoint:
    """Load a checkpoint folder; every file is validated before use and nothing in it can run code.

    Args:
        directory: the folder.
        device: where the tensors go (a checkpoint saved on CUDA loads on CPU and vice versa).
        verify: check every file against ``manifest.json`` (refusing uncommitted folders). False
            still validates every file's structure but accepts a folder without a manifest.
        expected_weights: ``{name: shape}`` or ``{name: tensor}`` the weights must match (e.g. a
            freshly built model's ``state_dict()``); checked on the header, before loading tensors.
        load_training_state: also read ``optimizer.safetensors`` and ``trainer.json``.

    Returns:
        A :class:`Checkpoint`.

    Raises:
        CheckpointNotFoundError: the folder, ``config.json`` or ``model.safetensors`` is missing.
        ManifestError: not committed, or a file differs from its manifest entry.
        CorruptFileError: a file is malformed, truncated, too large, too deep or hostile.
        WeightMismatchError: the weights differ from ``expected_weights``.
        CheckpointConfigError: ``config.json`` is not a model config.

    >>> ckpt = load_checkpoint("out/ckpt")  # doctest: +SKIP
    >>> ckpt.weights["kernel"].shape  # doctest: +SKIP
    torch.Size([4, 1])
    """
    directory = Path(directory)
    if not directory.is_dir() and not recover_interrupted_save(directory):
        raise CheckpointNotFoundError(directory, "checkpoint folder not found")
    manifest = mf.read_manifest(directory) if verify else None

    def present(name: str) -> bool:
        return name in manifest["files"] if manifest is not None else (directory / name).exists()

    def read(name: str, cap: int) -> bytes:
        path = directory / name
        if not present(name):
            where = "manifest.json does not list it" if manifest is not None else "file not found"
            raise CheckpointNotFoundError(path, f"missing ({where})")
        if manifest is None:
            return read_bounded(path, cap)
        if manifest["files"][name]["size"] > cap:
            raise CorruptFileError(path, f"manifest.json gives {manifest['files'][name]['size']} bytes, "
                                         f"larger than the {cap}-byte limit")
        return mf.read_verified(directory, manifest, name)

    def read_tree(name: str, tensors: Mapping[str, torch.Tensor] | None = None) -> Any:
        lim = limits.JSON_LIMITS[name]
        return decode_tree(parse_json(read(name, lim.max_bytes), file=directory / name, limits=lim), tensors,
                           file=directory / name)

    config = check_model_config(read_tree(CONFIG), file=directory / CONFIG)
    weights = decode_tensors(read(WEIGHTS, _NO_CAP), file=directory / WEIGHTS, expected=expected_weights,
                             device=device)
    ckpt = Checkpoint(path=directory, config=config, weights=weights, manifest=manifest)
    if load_training_state and present(TRAINER):
        tensors = (decode_tensors(read(OPTIMIZER, _NO_CAP), file=directory / OPTIMIZER, device=device)
                   if present(OPTIMIZER) else {})
        trainer = read_tree(TRAINER, tensors)
        path = directory / TRAINER
        check_type(trainer, dict, file=path, field="top-level value")
        check_keys(trainer, ("format", "version", "state", "optimizer"), file=path, field="top-level value")
        if trainer.get("format") != TRAINER_FORMAT or trainer.get("version") != 1:
            raise CorruptFileError(path, f"expected format {TRAINER_FORMAT!r} version 1, got "
                                         f"{trainer.get('format')!r} version {trainer.get('version')!r}")
        for key in ("state", "optimizer"):
            check_type(trainer.get(key), (dict, type(None)), file=path, field=key)
        ckpt.trainer_state, ckpt.optimizer_state = trainer["state"], trainer["optimizer"]
    if present(VOCAB):
        ckpt.vocab = read_tree(VOCAB)
    if present(RUN):
        ckpt.run_info = read_tree(RUN)
        check_type(ckpt.run_info, dict, file=directory / RUN, field="top-level value")
    return ckpt


def assign_weights(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], file: str | os.PathLike[str]) -> None:
    """Copy ``tensors`` into ``module``'s weights (``state_dict()`` names); names and shapes must match exactly.

    The one rule by which stored weights enter a model (loading, resuming, ``load_weights``).

    Raises:
        WeightMismatchError: naming ``file``, the missing and unexpected names and every shape difference.
    """
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    problems = [f"missing weights {missing}"] if missing else []
    problems += [f"unexpected weights {extra}"] if extra else []
    problems += [f"weight {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
                 for k, v in tensors.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if problems:
        raise WeightMismatchError(file, "; ".join(problems) + " (the weights do not fit the model)")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.to(dtype=own[k].dtype, device=own[k].device))
