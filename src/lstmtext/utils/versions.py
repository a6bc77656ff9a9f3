"""Versions recorded next to every checkpoint and printed in reports."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def library_versions() -> dict[str, str]:
    """Versions of Python, lstmtext and the libraries that change numbers (torch, numpy)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("lstmtext", "torch", "numpy", "safetensors"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
