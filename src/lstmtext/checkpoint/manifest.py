"""The manifest: the commit marker of a checkpoint folder.

``manifest.json`` lists every file of the checkpoint with its size and sha256, and is written last
(atomically): a folder without one was interrupted while being written and is not a checkpoint; a
folder whose files do not match it was modified or damaged after the commit. Reading a file through
:func:`read_verified` hashes exactly the bytes that will then be parsed, so a file cannot be swapped
between the check and the use.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstmtext.checkpoint.errors import CheckpointNotFoundError, ManifestError
from lstmtext.checkpoint.limits import JSON_LIMITS
from lstmtext.checkpoint.safejson import check_keys, check_type, dumps, read_bounded, read_json
from lstmtext.utils.io import atomic_write_bytes

MANIFEST = "manifest.json"
FORMAT = "lstmtext.checkpoint"
VERSION = 1
#: File names a manifest may list: plain names in the folder, never paths (no ``/``, no ``..``).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
MAX_MANIFEST_BYTES = JSON_LIMITS[MANIFEST].max_bytes


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def write_manifest(directory: str | os.PathLike[str], files: Mapping[str, bytes]) -> dict[str, Any]:
    """Commit a checkpoint: atomically write ``manifest.json`` for files already on disk.

    Args:
        directory: the checkpoint folder.
        files: ``{file name: the exact bytes written}``.

    Returns:
        The manifest written.
    """
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "files": {name: {"sha256": sha256_bytes(data), "size": len(data)} for name, data in files.items()},
    }
    atomic_write_bytes(Path(directory) / MANIFEST, dumps(manifest))
    return manifest


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and schema-check ``manifest.json``.

    Returns:
        The manifest: ``{"format", "version", "files": {name: {"sha256", "size"}}}``.

    Raises:
        ManifestError: there is none (the checkpoint was never committed) or it is malformed.
    """
    path = Path(directory) / MANIFEST
    try:
        manifest = read_json(path, limits=JSON_LIMITS[MANIFEST])
    except CheckpointNotFoundError:
        raise ManifestError(path, "missing: the checkpoint was not committed (interrupted while being "
                                  "written, or not an lstmtext checkpoint)") from None
    except ManifestError:
        raise
    except Exception as e:  # a corrupt manifest means an uncommitted or damaged checkpoint
        raise ManifestError(path, f"unreadable: {getattr(e, 'problem', e)}") from None
    try:
        check_keys(manifest, ("format", "version", "files"), file=path, field="top-level value")
    except Exception as e:
        raise ManifestError(path, getattr(e, "problem", str(e))) from None
    if manifest.get("format") != FORMAT:
        raise ManifestError(path, f"format must be {FORMAT!r}, got {manifest.get('format')!r}")
    if manifest.get("version") != VERSION:
        raise ManifestError(path, f"unsupported version {manifest.get('version')!r} (this lstmtext reads {VERSION})")
    files = manifest.get("files")
    try:
        check_type(files, dict, file=path, field="files")
        for name, entry in files.items():
            if not _NAME.match(name) or name == MANIFEST:
                raise ManifestError(path, f"file name {name!r} is not a plain file name of this folder")
            check_type(entry, dict, file=path, field=f"files[{name!r}]")
            check_keys(entry, ("sha256", "size"), file=path, field=f"files[{name!r}]")
            if not isinstance(entry.get("sha256"), str) or not _SHA.match(entry["sha256"]):
                raise ManifestError(path, f"files[{name!r}].sha256 must be 64 lowercase hex digits")
            size = entry.get("size")
            check_type(size, int, file=path, field=f"files[{name!r}].size")
            if size < 0:
                raise ManifestError(path, f"files[{name!r}].size must be >= 0, got {size}")
    except ManifestError:
        raise
    except Exception as e:
        raise ManifestError(path, getattr(e, "problem", str(e))) from None
    return manifest


def read_verified(directory: str | os.PathLike[str], manifest: Mapping[str, Any], name: str) -> bytes:
    """Read one file of a committed checkpoint and check it against the manifest.

    The size is checked before reading (a file that grew is never read past its recorded size) and
    the sha256 of the bytes returned is the one recorded.

    Raises:
        ManifestError: the file is not in the manifest, is missing, or differs from its entry.
    """
    path = Path(directory) / name
    entry = manifest["files"].get(name)
    if entry is None:
        raise ManifestError(path, "not listed in manifest.json")
    try:
        data = read_bounded(path, entry["size"])
    except CheckpointNotFoundError:
        raise ManifestError(path, "listed in manifest.json but missing") from None
    except Exception as e:
        raise ManifestError(path, f"does not match manifest.json: {getattr(e, 'problem', e)}") from None
    if len(data) != entry["size"]:
        raise ManifestError(path, f"is {len(data)} bytes, manifest.json says {entry['size']} (truncated?)")
    if sha256_bytes(data) != entry["sha256"]:
        raise ManifestError(path, "sha256 differs from manifest.json: the file was modified or damaged after the "
                                  "checkpoint was committed")
    return data


def verify_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Check that a folder is a committed checkpoint whose every file matches its manifest.

    Args:
        directory: the checkpoint folder.

    Returns:
        The manifest.

    Raises:
        CheckpointNotFoundError: the folder does not exist.
        ManifestError: not committed, or a file is missing, modified or truncated.

    >>> verify_checkpoint("runs/imdb/checkpoints/ckpt-e0002-s000314")  # doctest: +SKIP
    """
    if not Path(directory).is_dir():
        raise CheckpointNotFoundError(directory, "checkpoint folder not found")
    manifest = read_manifest(directory)
    for name in manifest["files"]:
        read_verified(directory, manifest, name)
    return manifest
