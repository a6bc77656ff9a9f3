"""lstmtext: Keras-exact LSTM text classifiers on PyTorch.

Build, train, evaluate, checkpoint, serve and export LSTM text models with Keras's API (``Model``,
``Sequential``, ``Input``, ``layers``, ``compile``/``fit``/``evaluate``/``predict``), faster.

Importing lstmtext changes nothing in the process (no environment variables, no allocator settings) and
does not import torch; the names below load their modules on first use. Training scripts may call
:func:`lstmtext.utils.tune_cpu_runtime` first thing (the ``lstmtext`` command does).

>>> import lstmtext                                                      # doctest: +SKIP
>>> inputs = lstmtext.Input(shape=(None,), dtype="int32")                # doctest: +SKIP
>>> x = lstmtext.layers.Embedding(20000, 128)(inputs)                    # doctest: +SKIP
"""

from importlib import import_module as _import_module
from importlib import metadata as _metadata
from typing import Any as _Any

try:
    __version__ = _metadata.version("lstmtext")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"

# Keras-style names -> (module, attribute or None for the module itself).
_LAZY = {
    "Model": ("lstmtext.models.model", "Model"),
    "Sequential": ("lstmtext.models.sequential", "Sequential"),
    "Input": ("lstmtext.layers.input_layer", "Input"),
    "Predictor": ("lstmtext.predictor", "Predictor"),
    "layers": ("lstmtext.layers", None),
    "models": ("lstmtext.models", None),
    "losses": ("lstmtext.losses", None),
    "metrics": ("lstmtext.metrics", None),
    "optimizers": ("lstmtext.optimizers", None),
    "callbacks": ("lstmtext.callbacks", None),
    "preprocessing": ("lstmtext.preprocessing", None),
    "datasets": ("lstmtext.datasets", None),
    "utils": ("lstmtext.utils", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> _Any:
    # On first use, so that `import lstmtext` (the CLI, `lstmtext stats`) loads neither torch nor the model stack.
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = _import_module(module_name)
        if name in ("Model", "Sequential"):  # both register with the layer registry through lstmtext.models
            _import_module("lstmtext.models")
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'lstmtext' has no attribute {name!r}")
