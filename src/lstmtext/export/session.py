"""onnxruntime sessions for exported graphs (used to check an export and to run one)."""

from __future__ import annotations

import os
from typing import Any

from lstmtext.errors import ConfigError, ExportError


def ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:  # the optional "export" extra
        raise ConfigError("the ONNX backend needs onnxruntime: pip install 'lstmtext[export]'") from e
    return onnxruntime


def make_session(model: bytes | str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` with full graph optimizations (CUDA first when available).

    Args:
        model: the serialized graph or a ``.onnx`` file.
        threads: intra-op threads (default: onnxruntime's choice, one per core).
    """
    rt = ort()
    opts = rt.SessionOptions()
    opts.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads <= 0:
            raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
        opts.intra_op_num_threads = threads
    available = rt.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    source = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return rt.InferenceSession(source, sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for unreadable files
        where = "the exported graph" if isinstance(model, bytes) else os.fspath(model)
        raise ExportError(f"{where}: onnxruntime cannot load it ({e})") from e
