"""lstmtext: Keras-exact LSTM text classifiers on PyTorch.

Build, train, evaluate, checkpoint, serve and export LSTM text classifiers with the Keras vocabulary
(``Sequential``, ``compile``/``fit``/``evaluate``/``predict``, ``load_data``/``pad_sequences``), faster.
"""

import os as _os
import sys as _sys
from importlib import metadata as _metadata

# CPU runtime settings that PyTorch reads once, when it is first imported; so they only take effect when
# lstmtext is imported before torch, and a value the user set is kept. Measured on a 2-core machine shared
# with other jobs (bench/RESULTS.md): OpenMP's default spin-waiting made a training step up to 10x slower
# when another process held a core, and fresh 4 KiB pages for every large per-step tensor cost more than
# the arithmetic of an embedding lookup. Set LSTMTEXT_KEEP_TORCH_ENV=1 to leave both untouched.
if "torch" not in _sys.modules and not _os.environ.get("LSTMTEXT_KEEP_TORCH_ENV"):
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep instead of spinning
    _os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # 2 MiB pages for torch's large CPU tensors

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
