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

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstmtext.checkpoint import (
    Checkpoint,
    CheckpointConfigError,
    assign_weights,
    capture_rng_state,
    check_model_config,
    load_checkpoint,
    make_run_info,
    resolve_checkpoint,
    save_checkpoint,
)
from lstmtext.checkpoint.folder import CONFIG, WEIGHTS
from lstmtext.checkpoint.safejson import read_bounded
from lstmtext.checkpoint.tensorfile import decode_tensors, encode_tensors
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.layers.base import deserialize, registered_layers, weight_budget
from lstmtext.training import losses, metrics, optimizers
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
    def metric_spec(m: Any) -> Any:
        if isinstance(m, str):
            return m
        if isinstance(m, metrics.Metric) and type(m).__name__ in metrics.METRIC_CLASSES:
            return {"class_name": type(m).__name__, "config": m.get_config()}
        return None

    def nested(spec: Any, leaf: Any) -> Any:
        # Several outputs: lists and dicts by output name of losses / metrics.
        if isinstance(spec, dict) and "class_name" not in spec:
            return {k: nested(v, leaf) for k, v in spec.items()}
        if isinstance(spec, (list, tuple)):
            return [nested(v, leaf) for v in spec]
        return None if spec is None else leaf(spec)

    out = {
        "optimizer": optimizers.serialize(model.optimizer),
        "loss": nested(model._loss_spec, lambda s: _spec(s, losses.serialize)),
        "metrics": nested(model._metric_specs, metric_spec),
        "weighted_metrics": nested(model._weighted_metric_specs, metric_spec),
    }
    if model._loss_weights is not None:
        out["loss_weights"] = model._loss_weights
    return out


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
    config: dict[str, Any] = {"class_name": type(model).__name__, "config": model.get_config()}
    if type(model).__name__ not in registered_layers():
        config["subclassed"] = True  # rebuilding it needs its class: load_model says so, by name
    return save_checkpoint(path, config=config,
                           weights=model.state_dict(), optimizer_state=optimizer_state,
                           trainer_state=trainer_state, vocab=vocab, run_info=run_info)


def build_model(checkpoint: Checkpoint | Mapping[str, Any], *, file: str | os.PathLike[str] = CONFIG) -> Any:
    """Rebuild the model a checkpoint's config describes, from registered lstmtext classes only (no weights yet).

    Args:
        checkpoint: a loaded :class:`~lstmtext.checkpoint.Checkpoint` or a ``{"class_name", "config"}`` dict.
        file: the file named in errors when a dict is given.

    Raises:
        CheckpointConfigError: the config names a class lstmtext does not register (``Lambda``, ``os.system``,
            a subclassed model, whose class is needed to rebuild it ...) or arguments that class refuses.
    """
    budget = None
    if isinstance(checkpoint, Checkpoint):
        config, file = checkpoint.config, checkpoint.path / CONFIG
        # The model's weights must fit in what the weights file holds (+1 MiB): a config asking for a huge
        # layer is refused before its weights are allocated and initialized, not after.
        budget = sum(t.numel() * t.element_size() for t in checkpoint.weights.values()) + (1 << 20)
    else:
        config = check_model_config(checkpoint, file=file)
    name = config.get("class_name")
    if config.get("subclassed") is True and name not in registered_layers():
        raise CheckpointConfigError(file, f"the model is a subclassed Model of class {name!r}; rebuilding it needs "
                                          f"that class: create it ({name}(...)), then call "
                                          "model.load_weights(<this folder>)")
    try:
        with weight_budget(budget) if budget is not None else contextlib.nullcontext():
            return deserialize(config)
    except ConfigError as e:
        raise CheckpointConfigError(file, str(e)) from None
    except Exception as e:  # any from_config rejecting its arguments: the file is untrusted input
        raise CheckpointConfigError(file, f"cannot build {config.get('class_name')!r}: {e}") from None


def load_model(path: str | os.PathLike[str] | Checkpoint, compile: bool = True) -> Any:
    """Rebuild a model from a checkpoint folder written by :func:`save_model` (weights, and the compile state).

    The one way a checkpoint becomes a model: ``Predictor``, ``lstmtext evaluate`` and the ONNX export use it.

    Args:
        path: a checkpoint folder, a run's checkpoint root (its newest valid checkpoint is used), or a
            :class:`~lstmtext.checkpoint.Checkpoint` already loaded (with ``load_checkpoint``).
        compile: compile the model as it was when saved (optimizer, loss, metrics).

    Returns:
        The model, on CPU, with its weights (and ``model.vocab`` when the checkpoint has one).

    Raises:
        CheckpointError: the folder is missing, not committed, damaged or hostile (naming the file),
            or its config names a class lstmtext does not know.

    >>> model = load_model("runs/imdb/final")  # doctest: +SKIP
    """
    ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(resolve_checkpoint(path),
                                                                      load_training_state=compile)
    model = build_model(ckpt)
    if not model.built:
        raise CheckpointConfigError(ckpt.path / CONFIG, "the model has no input shape (build_input_shape or an "
                                                        "Input), so its weights cannot be placed")
    assign_weights(model, ckpt.weights, ckpt.path / WEIGHTS)
    model.eval()
    comp = (ckpt.trainer_state or {}).get("compile") or {}
    def complete(spec: Any) -> bool:  # a loss that was a custom function is stored as None
        if isinstance(spec, dict) and "class_name" not in spec:
            return all(complete(v) for v in spec.values())
        if isinstance(spec, list):
            return all(complete(v) for v in spec)
        return spec is not None

    if compile and comp.get("loss") is not None and complete(comp["loss"]):
        def known(spec: Any) -> Any:  # metrics that were custom functions are left out (recompile to use them)
            if isinstance(spec, dict) and "class_name" not in spec:
                return {k: known(v) for k, v in spec.items()}
            if isinstance(spec, list):
                return [known(v) for v in spec if v is not None]
            return spec

        model.compile(optimizer=comp["optimizer"], loss=comp["loss"], metrics=known(comp.get("metrics") or []),
                      weighted_metrics=known(comp.get("weighted_metrics") or []),
                      loss_weights=comp.get("loss_weights"))
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
    assign_weights(model, tensors, file)
