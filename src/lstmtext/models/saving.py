"""Saving and loading models: a checkpoint is a folder, written atomically, with no pickle anywhere.

Layout (the checkpoint format of the project):

* ``config.json``: ``{"class_name": "Sequential", "config": model.get_config()}``;
* ``model.safetensors``: ``model.state_dict()`` (keys ``layers.<i>.<weight>``);
* ``optimizer.safetensors``: ``optimizer.state_dict()`` plus metric sums (``metrics.*``), when compiled;
* ``trainer.json``: compile arguments, the optimizer config and :meth:`Trainer.training_state`.

The folder is written under a temporary name next to the target and renamed into place, so the
target is either the complete new checkpoint or the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.utils.io import atomic_write_bytes, atomic_write_json, fsync_dir

CONFIG, WEIGHTS, OPTIMIZER, TRAINER = "config.json", "model.safetensors", "optimizer.safetensors", "trainer.json"


def _tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return st_save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return st_load(path.read_bytes())
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: file not found") from e
    except (SafetensorError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e


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


def save_model(model: Any, path: str | os.PathLike[str], overwrite: bool = True) -> Path:
    """Write ``model`` as a checkpoint folder at ``path`` (atomically; see the module docstring)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path}: already exists (pass overwrite=True to replace it)")
    if not model.built:
        raise ConfigError(f"{model.name}.save: the model is not built yet, so it has no weights to save")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        atomic_write_json(tmp / CONFIG, {"class_name": type(model).__name__, "config": model.get_config()})
        atomic_write_bytes(tmp / WEIGHTS, _tensors_bytes(model.state_dict()))
        opt = getattr(model, "optimizer", None)
        if getattr(model, "compiled", False) and opt is not None:
            js, tensors = model.training_state()
            if opt.built:
                tensors.update({f"optimizer.{k}": v for k, v in opt.state_dict().items()})
            atomic_write_bytes(tmp / OPTIMIZER, _tensors_bytes(tensors))
            atomic_write_json(tmp / TRAINER, {"compile": _compile_config(model), **js})
        # Swap in: the old folder is moved aside first and deleted only after the new one is in place.
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """Rebuild a model from a folder written by :func:`save_model` (weights, and the compile state)."""
    from lstmtext.layers.base import deserialize

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint folder")
    cfg = _read_json(path / CONFIG)
    try:
        model = deserialize(cfg)
    except ConfigError as e:
        raise CheckpointError(f"{path / CONFIG}: {e}") from e
    load_weights(model, path / WEIGHTS)
    if compile and (path / TRAINER).exists():
        comp = _read_json(path / TRAINER).get("compile", {})
        if comp.get("loss") is not None:
            model.compile(optimizer=comp["optimizer"], loss=comp["loss"],
                          metrics=[m for m in comp.get("metrics", []) if m is not None],
                          weighted_metrics=[m for m in comp.get("weighted_metrics", []) if m is not None])
    return model


def save_weights(model: Any, path: str | os.PathLike[str], overwrite: bool = True) -> Path:
    """Write ``model.state_dict()`` to one safetensors file, atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path}: already exists (pass overwrite=True to replace it)")
    if not model.built:
        raise ConfigError(f"{model.name}.save_weights: the model is not built yet")
    return atomic_write_bytes(path, _tensors_bytes(model.state_dict()))


def load_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Load a safetensors file (or a checkpoint folder's weights) into ``model``; names and shapes must match."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    tensors = _read_tensors(path)
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path}: weights do not match the model: missing {missing}, unexpected {extra}")
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{path}: weight {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
            )
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.to(dtype=own[k].dtype, device=own[k].device))


def restore_training(model: Any, path: str | os.PathLike[str]) -> None:
    """Load weights, optimizer state, loop position, RNG states and metric sums from a checkpoint folder
    into a compiled, prepared ``model`` (``fit(resume_from=path)`` calls this)."""
    path = Path(path)
    load_weights(model, path / WEIGHTS)
    trainer = _read_json(path / TRAINER)
    tensors = _read_tensors(path / OPTIMIZER)
    opt_state = {k.removeprefix("optimizer."): v for k, v in tensors.items() if k.startswith("optimizer.")}
    if opt_state:
        try:
            model.optimizer.load_state_dict(opt_state)
        except ConfigError as e:
            raise CheckpointError(f"{path / OPTIMIZER}: {e}") from e
    lr = trainer.get("compile", {}).get("optimizer", {}).get("config", {}).get("learning_rate")
    if lr is not None:  # ReduceLROnPlateau may have changed it during the saved run
        model.optimizer.learning_rate = lr
    try:
        model.load_training_state(trainer, tensors)
    except ConfigError as e:
        raise CheckpointError(f"{path / TRAINER}: {e}") from e
