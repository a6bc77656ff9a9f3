"""Each supported lstmtext layer written as ONNX operators, with Keras's mask flow between them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import TensorProto

from lstmtext.errors import ExportError
from lstmtext.export.graph import GraphBuilder, apply_activation
from lstmtext.export.lstm import MaskInfo, lower_bidirectional, lower_lstm


@dataclass
class Flow:
    """What flows from one layer to the next: the tensor, its mask (or None) and its rank."""

    x: str
    mask: str | None
    rank: int
    cache: dict[str, MaskInfo] = field(default_factory=dict)


def _weight(layer: Any, name: str) -> np.ndarray:
    return getattr(layer, name).detach().cpu().numpy().astype(np.float32)


def _embedding(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    ids = f.x
    out = g.op("Gather", [g.const(_weight(layer, "embeddings"), f"{layer.name}_embeddings"), ids], axis=0,
               base=layer.name)
    mask = g.op("Not", [g.op("Equal", [ids, g.const(np.int64(0))])], base=f"{layer.name}_mask") \
        if layer.mask_zero else None
    return Flow(out, mask, f.rank + 1, f.cache)


def _masking(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    differs = g.op("Cast", [g.op("Not", [g.op("Equal", [f.x, g.const(np.float32(layer.mask_value))])])],
                   to=TensorProto.FLOAT)
    keep = g.op("Cast", [g.reduce("ReduceMax", differs, [-1], keepdims=True)], to=TensorProto.BOOL)  # (B, T, 1)
    out = g.op("Where", [keep, f.x, g.const(np.float32(0.0))], base=layer.name)
    return Flow(out, g.squeeze(keep, [-1]), f.rank, f.cache)


def _dense(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    y = g.op("MatMul", [f.x, g.const(_weight(layer, "kernel"), f"{layer.name}_kernel")])
    if layer.use_bias:
        y = g.op("Add", [y, g.const(_weight(layer, "bias"), f"{layer.name}_bias")])
    return Flow(apply_activation(g, y, layer.activation, layer.name), f.mask, f.rank, f.cache)


def _identity(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    return f  # Dropout: inference is the identity, and the mask passes through


def _lstm(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    _check_rank(layer, f, 3)
    out = lower_lstm(g, layer, f.x, f.mask, f.cache)
    return Flow(out, f.mask if layer.return_sequences else None, 3 if layer.return_sequences else 2, f.cache)


def _bidirectional(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    _check_rank(layer, f, 3)
    out = lower_bidirectional(g, layer, f.x, f.mask, f.cache)
    return Flow(out, f.mask if layer.return_sequences else None, 3 if layer.return_sequences else 2, f.cache)


def _flatten(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    return Flow(g.op("Flatten", [f.x], axis=1, base=layer.name), None, 2, f.cache)


def _global_average(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    _check_rank(layer, f, 3)
    axis = 1 if layer.data_format == "channels_last" else 2
    if f.mask is None:
        out = g.reduce("ReduceMean", f.x, [axis], keepdims=layer.keepdims)
    else:
        m = g.unsqueeze(f.mask, [2 if axis == 1 else 1])
        total = g.reduce("ReduceSum", g.op("Where", [m, f.x, g.const(np.float32(0.0))]), [axis], layer.keepdims)
        count = g.reduce("ReduceSum", g.op("Cast", [m], to=TensorProto.FLOAT), [axis], layer.keepdims)
        out = g.op("Div", [total, count])  # an all-padded row divides by zero: NaN, as in Keras and PyTorch
    return Flow(out, None, 3 if layer.keepdims else 2, f.cache)


def _global_max(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    _check_rank(layer, f, 3)
    axis = 1 if layer.data_format == "channels_last" else 2
    return Flow(g.reduce("ReduceMax", f.x, [axis], keepdims=layer.keepdims), None, 3 if layer.keepdims else 2,
                f.cache)


def _concat_pooling(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    """``[last real step, max, mean over real steps]`` (``ConcatPooling``); a row with no real step gives zeros."""
    _check_rank(layer, f, 3)
    if f.mask is None:
        last = g.op("Gather", [f.x, g.const(np.int64(-1))], axis=1)
        parts = [last, g.reduce("ReduceMax", f.x, [1], False), g.reduce("ReduceMean", f.x, [1], False)]
        return Flow(g.op("Concat", parts, axis=1, base=layer.name), None, 2, f.cache)
    m3 = g.unsqueeze(f.mask, [2])  # (B, T, 1)
    steps = g.op("Range", [g.const(np.int64(0)), g.squeeze(g.dim(f.x, 1), [0]), g.const(np.int64(1))])
    # The last real step: argmax over t of t * mask (0 for a row without one, which is zeroed below).
    last_idx = g.op("ArgMax", [g.op("Mul", [g.op("Cast", [f.mask], to=TensorProto.INT64), steps])], axis=1,
                    keepdims=1)  # (B, 1)
    at_last = g.unsqueeze(g.op("Equal", [steps, last_idx]), [2])  # (B, T, 1): one True per row
    last = g.reduce("ReduceSum", g.op("Where", [at_last, f.x, g.const(np.float32(0.0))]), [1], False)
    mx = g.reduce("ReduceMax", g.op("Where", [m3, f.x, g.const(np.float32(np.finfo(np.float32).min))]), [1], False)
    total = g.reduce("ReduceSum", g.op("Where", [m3, f.x, g.const(np.float32(0.0))]), [1], False)
    count = g.reduce("ReduceSum", g.op("Cast", [m3], to=TensorProto.FLOAT), [1], False)  # (B, 1)
    mean = g.op("Div", [total, g.op("Max", [count, g.const(np.float32(1.0))])])
    out = g.op("Concat", [last, mx, mean], axis=1)
    has = g.op("Greater", [count, g.const(np.float32(0.0))])
    return Flow(g.op("Where", [has, out, g.const(np.float32(0.0))], base=layer.name), None, 2, f.cache)


def _batch_normalization(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    """Inference mode (the moving statistics), folded into one scale and one shift along the layer's axis."""
    scale = 1.0 / np.sqrt(_weight(layer, "moving_variance") + np.float32(layer.epsilon))
    if layer.scale:
        scale = scale * _weight(layer, "gamma")
    shift = -_weight(layer, "moving_mean") * scale
    if layer.center:
        shift = shift + _weight(layer, "beta")
    axis = layer.axis % f.rank
    shape = (-1, *([1] * (f.rank - 1 - axis)))  # broadcast from the right onto the feature axis
    out = g.op("Add", [g.op("Mul", [f.x, g.const(scale.astype(np.float32).reshape(shape), f"{layer.name}_scale")]),
                       g.const(shift.astype(np.float32).reshape(shape), f"{layer.name}_shift")], base=layer.name)
    return Flow(out, f.mask, f.rank, f.cache)


def _activation(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    return Flow(apply_activation(g, f.x, layer.activation, layer.name), f.mask, f.rank, f.cache)


def _repeat_vector(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    _check_rank(layer, f, 2)
    out = g.op("Tile", [g.unsqueeze(f.x, [1]), g.const(np.array([1, layer.n, 1], np.int64))], base=layer.name)
    return Flow(out, None, 3, f.cache)  # RepeatVector does not support masking


# Inner layers of TimeDistributed that act on the last axis only, so they apply to (B, T, ...) as they are.
_PER_STEP = ("Dense", "Activation", "Dropout")


def _time_distributed(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    inner = layer.layer
    if type(inner).__name__ not in _PER_STEP:
        raise ExportError(f"layer {layer.name!r} (TimeDistributed) cannot be exported to ONNX: its inner layer "
                          f"{inner.name!r} ({type(inner).__name__}) is not one of {', '.join(_PER_STEP)}")
    out = lower_layer(g, inner, Flow(f.x, None, f.rank - 1, f.cache))
    return Flow(out.x, f.mask, f.rank, f.cache)  # TimeDistributed passes its mask on


def _sequential(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    for inner in layer.layers:
        f = lower_layer(g, inner, f)
    return f  # the mask its last layer computed leaves a nested model, as in Keras (Model.compute_mask)


def _reverse_sequence(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    """Axis 1 reversed (a Slice with step -1), the mask with it."""
    def flip(name: str, base: str) -> str:
        return g.op("Slice", [name, g.const(np.array([-1], np.int64)),
                              g.const(np.array([np.iinfo(np.int64).min], np.int64)), g.const(np.array([1], np.int64)),
                              g.const(np.array([-1], np.int64))], base=base)
    mask = flip(f.mask, f"{layer.name}_mask") if f.mask is not None else None
    return Flow(flip(f.x, layer.name), mask, f.rank, f.cache)


def _check_rank(layer: Any, f: Flow, rank: int) -> None:
    if f.rank != rank:
        raise ExportError(f"layer {layer.name!r} ({type(layer).__name__}) expects a rank-{rank} input, "
                          f"the layer before it gives rank {f.rank}")


_LOWERINGS: dict[str, Callable[[GraphBuilder, Any, Flow], Flow]] = {
    "Embedding": _embedding,
    "Masking": _masking,
    "Dense": _dense,
    "Dropout": _identity,
    "SpatialDropout1D": _identity,
    "Activation": _activation,
    "RepeatVector": _repeat_vector,
    "ReverseSequence": _reverse_sequence,
    "TimeDistributed": _time_distributed,
    "LSTM": _lstm,
    "Bidirectional": _bidirectional,
    "Flatten": _flatten,
    "GlobalAveragePooling1D": _global_average,
    "GlobalMaxPooling1D": _global_max,
    "ConcatPooling": _concat_pooling,
    "BatchNormalization": _batch_normalization,
    "Sequential": _sequential,
}


def supported_layers() -> list[str]:
    """Layer classes the ONNX exporter writes."""
    return sorted(_LOWERINGS)


def lower_layer(g: GraphBuilder, layer: Any, f: Flow) -> Flow:
    """Append ``layer`` to the graph; raises :class:`ExportError` naming the layer when it cannot be exported."""
    kind = type(layer).__name__
    lower = _LOWERINGS.get(kind)
    if lower is None or type(layer).__module__.split(".")[0] != "lstmtext":
        raise ExportError(f"layer {getattr(layer, 'name', '?')!r} ({kind}) cannot be exported to ONNX: no ONNX "
                          f"translation for this layer class; supported: {', '.join(supported_layers())}")
    dtype = getattr(layer, "dtype_name", "float32")
    if dtype != "float32":
        raise ExportError(f"layer {layer.name!r} ({kind}) cannot be exported to ONNX: dtype {dtype} (the exported "
                          "graph is float32)")
    return lower(g, layer, f)
