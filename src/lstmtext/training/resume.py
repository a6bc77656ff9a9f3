"""Resuming training from a checkpoint folder: weights, optimizer, loop position, RNG states, metric sums.

``fit(resume_from=path)`` calls :func:`restore_training`; the folder format is :mod:`lstmtext.checkpoint`'s.
"""

from __future__ import annotations

import os
from typing import Any

from lstmtext.checkpoint import Checkpoint, assign_weights, load_checkpoint, resolve_checkpoint, restore_rng_state
from lstmtext.checkpoint.folder import OPTIMIZER, TRAINER, WEIGHTS
from lstmtext.errors import CheckpointError, ConfigError


def restore_training(model: Any, path: str | os.PathLike[str]) -> Checkpoint:
    """Load weights, optimizer state, loop position, RNG states and metric sums from a checkpoint into a
    compiled, prepared ``model`` (as ``fit`` prepares it: built, optimizer built).

    Args:
        model: the compiled model.
        path: a checkpoint folder, or a run's checkpoint root (its newest valid checkpoint is used,
            skipping a broken newer one with a warning).

    Returns:
        The checkpoint restored.

    Raises:
        CheckpointError: the folder is damaged, has no training state, or its optimizer state does not fit.
    """
    ckpt = load_checkpoint(resolve_checkpoint(path))
    assign_weights(model, ckpt.weights, ckpt.path / WEIGHTS)
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
