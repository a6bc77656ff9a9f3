"""The per-user cache folder shared by parsed datasets, downloads and compiled kernels."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "LSTMTEXT_CACHE_DIR"
"""Environment variable overriding the cache folder."""


def cache_root(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else ``$LSTMTEXT_CACHE_DIR``, else ``$XDG_CACHE_HOME/lstmtext``, else
    ``~/.cache/lstmtext``. Not created here: writers create it when they first write."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lstmtext"
