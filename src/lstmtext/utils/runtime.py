"""CPU runtime settings for a process that trains or serves: opt-in, never done at import.

Measured on a 2-core machine shared with other jobs (bench/RESULTS.md): OpenMP's default spin-waiting made a
training step up to 10x slower when another process held a core, and fresh pages for every per-step tensor
(page faults, zeroing) cost more than the arithmetic of an embedding lookup. The ``lstmtext`` command line
and ``lstmtext serve`` call :func:`tune_cpu_runtime` first thing; a script calls it itself, before
importing torch.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: Environment variables torch reads once, when it is first imported.
TORCH_ENV_DEFAULTS = {
    "OMP_WAIT_POLICY": "PASSIVE",  # idle OpenMP threads sleep instead of spinning
    "THP_MEM_ALLOC_ENABLE": "1",  # 2 MiB pages for torch's large CPU tensors
}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_cpu_runtime(*, env: bool = True, malloc: bool = True) -> dict[str, bool]:
    """Set this process up for fast CPU training and serving (a no-op where a setting cannot apply).

    Args:
        env: set ``OMP_WAIT_POLICY=PASSIVE`` and ``THP_MEM_ALLOC_ENABLE=1`` unless the user set them; they
            only take effect when torch has not been imported yet.
        malloc: ask glibc to reuse freed blocks up to 32 MiB instead of mapping fresh pages for each tensor,
            and to keep up to 256 MiB of freed memory for reuse (``mallopt``).

    Returns:
        ``{"env": ..., "malloc": ...}``: which of the two took effect. Set ``LSTMTEXT_KEEP_TORCH_ENV=1`` to
        make the call change nothing.

    >>> from lstmtext.utils import tune_cpu_runtime  # doctest: +SKIP
    >>> tune_cpu_runtime()                           # doctest: +SKIP
    {'env': True, 'malloc': True}
    """
    done = {"env": False, "malloc": False}
    if os.environ.get("LSTMTEXT_KEEP_TORCH_ENV"):
        return done
    if env and "torch" not in sys.modules:
        for key, value in TORCH_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        done["env"] = True
    if malloc:
        try:
            libc = ctypes.CDLL(None)
            done["malloc"] = bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20))
        except (OSError, AttributeError):  # not glibc
            pass
    return done
