"""lstmtext: Keras-exact LSTM text classifiers on PyTorch.

Build, train, evaluate, checkpoint, serve and export LSTM text classifiers with the Keras vocabulary
(``Sequential``, ``compile``/``fit``/``evaluate``/``predict``, ``load_data``/``pad_sequences``), faster.
"""

import os as _os
import sys as _sys
from importlib import metadata as _metadata

# CPU runtime settings, measured on a 2-core machine shared with other jobs (bench/RESULTS.md): OpenMP's
# default spin-waiting made a training step up to 10x slower when another process held a core, and fresh
# pages for every per-step tensor (page faults, zeroing) cost more than the arithmetic of an embedding
# lookup. The first two are read by PyTorch once, when it is first imported: they only take effect when
# lstmtext is imported before torch, and a value the user set is kept. Set LSTMTEXT_KEEP_TORCH_ENV=1 to
# leave all three untouched.
if not _os.environ.get("LSTMTEXT_KEEP_TORCH_ENV"):
    if "torch" not in _sys.modules:
        _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep instead of spinning
        _os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # 2 MiB pages for torch's large CPU tensors
    try:  # glibc: reuse freed blocks up to 32 MiB instead of mapping fresh pages for each tensor
        import ctypes as _ctypes

        _libc = _ctypes.CDLL(None)
        _libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        _libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MiB of freed memory for reuse
    except (OSError, AttributeError):  # not glibc
        pass

try:
    __version__ = _metadata.version("lstmtext")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    # Lazy, so that importing lstmtext (the CLI, `lstmtext stats`) does not load the model stack.
    if name == "Predictor":
        from lstmtext.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'lstmtext' has no attribute {name!r}")
