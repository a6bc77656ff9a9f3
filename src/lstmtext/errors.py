"""Typed errors. Every message names the file, field or argument, the value, and what was expected."""

from __future__ import annotations


class LstmtextError(Exception):
    """Base class of every error lstmtext raises on purpose."""


class ConfigError(LstmtextError, ValueError):
    """An argument, config field or option has a value lstmtext cannot use."""


class DataError(LstmtextError, ValueError):
    """A dataset file, folder or array is missing, malformed or of the wrong shape."""


class ChecksumError(DataError):
    """A downloaded or cached file does not have the expected sha256."""


class CheckpointError(LstmtextError):
    """A checkpoint folder or model file is missing, corrupt, hostile or does not match its config."""


class DistributedError(LstmtextError):
    """A process of a distributed run died, timed out or could not join the others."""


class ExportError(LstmtextError):
    """A model cannot be exported in the requested format."""
