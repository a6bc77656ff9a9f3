"""Typed checkpoint errors: each names the file (or folder) and what is wrong with it.

All subclass :class:`lstmtext.errors.CheckpointError`, so ``except CheckpointError`` catches any
problem with a checkpoint, whatever the file.
"""

from __future__ import annotations

import os

from lstmtext.errors import CheckpointError, ConfigError


class _NamedFileError(CheckpointError):
    """A checkpoint error about one file; ``path`` is kept so callers can act on it."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep the two-argument constructor working across processes
        return (type(self), (self.path, self.problem))


class CorruptFileError(_NamedFileError):
    """A checkpoint file is truncated, malformed, too large, too deeply nested or otherwise hostile."""


class ManifestError(_NamedFileError):
    """A checkpoint is not committed (no manifest) or a file does not match its manifest entry."""


class WeightMismatchError(_NamedFileError):
    """A weights file is well formed but its names, shapes or dtypes differ from what the model expects."""


class CheckpointNotFoundError(_NamedFileError, FileNotFoundError):
    """A checkpoint folder, or a file it must contain, does not exist."""


class CheckpointConfigError(_NamedFileError, ConfigError):
    """``config.json`` is valid JSON but does not describe a model lstmtext can build."""


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (e.g. the newest one is broken and an older one is used instead)."""
