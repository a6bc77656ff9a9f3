"""Saving and loading models through :mod:`lstmtext.checkpoint` (folders of JSON + safetensors, no pickle).

``model.save(path)`` writes a checkpoint folder (see :mod:`lstmtext.checkpoint.folder`):

* ``config.json``: ``{"class_name": "Sequential", "config": model.get_config()}``;
* ``model.safetensors``: ``model.state_dict()`` (keys ``layers.<i>.<weight>``), on CPU;
* ``optimizer.safetensors`` + ``trainer.json``, when compiled: the optimizer's state, the compile
  arguments, :meth:`Trainer.training_state` (loop position, history, metric sums) and every RNG state;
* ``vocab.json`` when a vocabulary is given; ``run.json``: command line, versions, device, history;
* ``manifest.json``: sha256 of each file, written last (the commit marker).

The folder is built under a hidden name and renamed into place, so ``path`` always holds either the
complete new checkpoint or the previous one; loading verifies the manifest and validates every file
before use, so a damaged or hostile folder raises a :class:`~lstmtext.errors.CheckpointError` naming
the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lstmtext.checkpoint import (
    Checkpoint,
    WeightMismatchError,
    build_model,
    capture_rng_state,
    load_checkpoint,
    make_run_info,
    resolve_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from lstmtext.checkpoint.folder import OPTIMIZER, TRAINER, WEIGHTS
from lstmtext.checkpoint.safejson import read_bounded
from lstmtext.checkpoint.tensorfile import decode_tensors, encode_tensors
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.utils.io import atomic_write_bytes

_MAX_WEIGHTS_FILE = 1 << 44


def _spec(obj: Any, serialize: Any) -> Any:
    if isinstance(obj, str):
        return obj
    try:
        return serialize(obj)
    except ConfigError:
        return None  # a custom function: the model loads, recompile to use it


def _compile_config(model: Any) -> dict[str, Any]:
    from lstmtext.training import losses, metrics, optimizers

    def metric_spec(m: Any) -> Any:
        if isinstance(m, str):
            return m
        if isinstance(m, metrics.Metric) and type(m).__name__ in metrics.METRIC_CLASSES:
            return {"class_name": type(m).__name__, "config": m.get_config()}
        return None

    return {
        "optimizer": optimizers.serialize(model.optimizer),
        "loss": _spec(model.loss, losses.serialize),
        "metrics": [metric_spec(m) for m in model._metric_specs],
        "weighted_metrics": [metric_spec(m) for m in model._weighted_metric_specs],
    }


def save_model(model: Any, path: str | os.PathLike[str], overwrite: bool = True, *, vocab: Any = None,
               run_info: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as a checkpoint folder at ``path`` (atomically; see the module docstring).

    Args:
        model: a built model.
        path: the folder.
        overwrite: replace an existing checkpoint at ``path``.
        vocab: the tokenizer / vocabulary to keep with the model (``vocab.json``).
        run_info: the ``run.json`` record (default: :func:`~lstmtext.checkpoint.make_run_info` with the
            model's device and training history).

    Returns:
        The folder.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path}: already exists (pass overwrite=True to replace it)")
    if not model.built:
        raise ConfigError(f"{model.name}.save: the model is not built yet, so it has no weights to save")
    optimizer_state = trainer_state = None
    opt = getattr(model, "optimizer", None)
    if getattr(model, "compiled", False) and opt is not None:
        js, metric_tensors = model.training_state()
        trainer_state = {"compile": _compile_config(model), **js, "metric_tensors": metric_tensors,
                         "rng_all": capture_rng_state()}
        if opt.built:
            optimizer_state = opt.state_dict()
    if run_info is None:
        params = list(model.parameters())
        history = getattr(getattr(model, "train_state", None), "history", None)
        run_info = make_run_info(device=params[0].device if params else None, metrics=history)
    return save_checkpoint(path, config={"class_name": type(model).__name__, "config": model.get_config()},
                           weights=model.state_dict(), optimizer_state=optimizer_state,
                           trainer_state=trainer_state, vocab=vocab, run_info=run_info)


def _assign_weights(model: Any, tensors: Mapping[str, torch.Tensor], file: str | os.PathLike[str]) -> None:
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    problems = [f"missing weights {missing}"] if missing else []
    problems += [f"unexpected weights {extra}"] if extra else []
    problems += [f"weight {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
                 for k, v in tensors.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if problems:
        raise WeightMismatchError(file, "weights do not match the model: " + "; ".join(problems))
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.to(dtype=own[k].dtype, device=own[k].device))


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """Rebuild a model from a checkpoint folder written by :func:`save_model` (weights, and the compile state).

    Args:
        path: a checkpoint folder, or a run's checkpoint root (its newest valid checkpoint is used).
        compile: compile the model as it was when saved (optimizer, loss, metrics).

    Returns:
        The model, on CPU, with its weights (and ``model.vocab`` when the checkpoint has one).

    Raises:
        CheckpointError: the folder is missing, not committed, damaged or hostile (naming the file),
            or its config names a class lstmtext does not know.

    >>> model = load_model("runs/imdb/final")  # doctest: +SKIP
    """
    ckpt = load_checkpoint(resolve_checkpoint(path), load_training_state=compile)
    model = build_model(ckpt)
    _assign_weights(model, ckpt.weights, ckpt.path / WEIGHTS)
    comp = (ckpt.trainer_state or {}).get("compile") or {}
    if compile and comp.get("loss") is not None:
        model.compile(optimizer=comp["optimizer"], loss=comp["loss"],
                      metrics=[m for m in comp.get("metrics", []) if m is not None],
                      weighted_metrics=[m for m in comp.get("weighted_metrics", []) if m is not None])
    if ckpt.vocab is not None:
        model.vocab = ckpt.vocab
    return model


def save_weights(model: Any, path: str | os.PathLike[str], overwrite: bool = True) -> Path:
    """Write ``model.state_dict()`` to one safetensors file, atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path}: already exists (pass overwrite=True to replace it)")
    if not model.built:
        raise ConfigError(f"{model.name}.save_weights: the model is not built yet")
    return atomic_write_bytes(path, encode_tensors(model.state_dict(), file=path))


def load_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Load a safetensors file (or a checkpoint folder's weights) into ``model``; names and shapes must match."""
    path = Path(path)
    expected = model.state_dict()
    if path.is_dir():
        ckpt = load_checkpoint(path, expected_weights=expected, load_training_state=False)
        tensors, file = ckpt.weights, ckpt.path / WEIGHTS
    else:
        tensors = decode_tensors(read_bounded(path, _MAX_WEIGHTS_FILE), file=path, expected=expected)
        file = path
    _assign_weights(model, tensors, file)


def restore_training(model: Any, path: str | os.PathLike[str]) -> Checkpoint:
    """Load weights, optimizer state, loop position, RNG states and metric sums from a checkpoint into a
    compiled, prepared ``model`` (``fit(resume_from=path)`` calls this).

    Args:
        model: the compiled model, built and with its optimizer built (as ``fit`` prepares it).
        path: a checkpoint folder, or a run's checkpoint root (its newest valid checkpoint is used,
            skipping a broken newer one with a warning).

    Returns:
        The checkpoint restored.
    """
    ckpt = load_checkpoint(resolve_checkpoint(path))
    _assign_weights(model, ckpt.weights, ckpt.path / WEIGHTS)
    state = ckpt.trainer_state
    if state is None:
        raise CheckpointError(f"{ckpt.path / TRAINER}: missing: the checkpoint has no training state to resume "
                              "(it was saved from a model that was not compiled)")
    if ckpt.optimizer_state:
        try:
            model.optimizer.load_state_dict(ckpt.optimizer_state)
        except ConfigError as e:
            raise CheckpointError(f"{ckpt.path / OPTIMIZER}: {e}") from e
    lr = (state.get("compile") or {}).get("optimizer", {}).get("config", {}).get("learning_rate")
    if lr is not None:  # ReduceLROnPlateau may have changed it during the saved run
        model.optimizer.learning_rate = lr
    if "rng_all" in state:
        restore_rng_state(state["rng_all"], file=ckpt.path / TRAINER)
    try:
        model.load_training_state(state, state.get("metric_tensors") or {})
    except ConfigError as e:
        raise CheckpointError(f"{ckpt.path / TRAINER}: {e}") from e
    return ckpt
