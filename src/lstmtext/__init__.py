"""lstmtext: Keras-exact LSTM text classifiers on PyTorch.

Build, train, evaluate, checkpoint, serve and export LSTM text classifiers with the Keras vocabulary
(``Sequential``, ``compile``/``fit``/``evaluate``/``predict``, ``load_data``/``pad_sequences``), faster.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("lstmtext")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
