"""Exports: ONNX graphs that use ONNX's native LSTM operator (masks included), checked against onnxruntime.

>>> from lstmtext.export import to_onnx, onnx_predictor
>>> to_onnx("runs/imdb", "imdb.onnx", opset=17)  # doctest: +SKIP
>>> onnx_predictor("imdb.onnx").predict(["a wonderful film"])  # doctest: +SKIP

Needs the ``export`` extra (``pip install 'lstmtext[export]'``: onnx and onnxruntime).
"""

from lstmtext.errors import ExportError

try:
    from lstmtext.export.graph import DEFAULT_OPSET, MIN_OPSET, supported_activations
    from lstmtext.export.layers import supported_layers
    from lstmtext.export.lstm import keras_to_onnx_lstm_weights
    from lstmtext.export.onnx import ExportResult, build_onnx, to_onnx, verify_onnx
    from lstmtext.export.runtime import OnnxModel, onnx_predictor
except ImportError as e:  # pragma: no cover - depends on the installed extras
    if e.name not in ("onnx", "onnxruntime"):
        raise
    raise ImportError("lstmtext.export needs onnx and onnxruntime: pip install 'lstmtext[export]'") from e

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "ExportError",
    "ExportResult",
    "OnnxModel",
    "build_onnx",
    "keras_to_onnx_lstm_weights",
    "onnx_predictor",
    "supported_activations",
    "supported_layers",
    "to_onnx",
    "verify_onnx",
]
