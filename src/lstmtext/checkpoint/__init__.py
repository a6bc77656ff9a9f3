"""Checkpoints: crash-safe folders of JSON + safetensors that load without running any code.

>>> from lstmtext.checkpoint import save_checkpoint, load_checkpoint, latest_checkpoint, rotate

See :mod:`lstmtext.checkpoint.folder` for the folder layout and commit protocol, and ``SECURITY.md``
for what loading a hostile file can and cannot do.
"""

from lstmtext.checkpoint.errors import (
    CheckpointConfigError,
    CheckpointNotFoundError,
    CheckpointWarning,
    CorruptFileError,
    ManifestError,
    WeightMismatchError,
)
from lstmtext.checkpoint.folder import (
    Checkpoint,
    assign_weights,
    check_model_config,
    delete_checkpoint,
    load_checkpoint,
    make_run_info,
    recover_interrupted_save,
    save_checkpoint,
)
from lstmtext.checkpoint.manifest import verify_checkpoint
from lstmtext.checkpoint.rng import capture_rng_state, restore_rng_state
from lstmtext.checkpoint.rotation import (
    checkpoint_name,
    clean_temp_files,
    latest_checkpoint,
    list_checkpoints,
    resolve_checkpoint,
    rotate,
)
from lstmtext.checkpoint.tree import flatten_optimizer_state, unflatten_optimizer_state
from lstmtext.errors import CheckpointError

__all__ = [
    "Checkpoint",
    "CheckpointConfigError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointWarning",
    "CorruptFileError",
    "ManifestError",
    "WeightMismatchError",
    "assign_weights",
    "capture_rng_state",
    "check_model_config",
    "checkpoint_name",
    "clean_temp_files",
    "delete_checkpoint",
    "flatten_optimizer_state",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "make_run_info",
    "recover_interrupted_save",
    "resolve_checkpoint",
    "restore_rng_state",
    "rotate",
    "save_checkpoint",
    "unflatten_optimizer_state",
    "verify_checkpoint",
]
