"""Layers that take several tensors (the merges, ``Dot``, ``Attention``) written as ONNX operators.

Each lowering takes the flows of the layer's inputs (tensor, mask, rank) and returns the flows of its
outputs, with Keras's mask rules as :mod:`lstmtext.layers.merging` and :mod:`lstmtext.layers.attention`
apply them (an output mask is the OR of the input masks, ``Concatenate`` joins them, ``Attention`` passes
the query's on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import TensorProto

from lstmtext.errors import ExportError
from lstmtext.export.graph import GraphBuilder
from lstmtext.export.layers import Flow

#: What Attention subtracts from masked scores in float32 (lstmtext.layers.attention, Keras's 1e9).
_MASK_OFFSET = 1.0e9


def _weight(layer: Any, name: str) -> np.ndarray:
    return getattr(layer, name).detach().cpu().numpy().astype(np.float32)


def _as_rank(g: GraphBuilder, m: str, mask_rank: int, rank: int) -> str:
    """A ``(B, T)`` mask with trailing axes added so that it broadcasts against a rank-``rank`` tensor."""
    return g.unsqueeze(m, list(range(mask_rank, rank))) if rank > mask_rank else m


def _or_masks(g: GraphBuilder, flows: list[Flow]) -> str | None:
    if any(f.mask is None for f in flows):
        return None
    out = flows[0].mask
    for f in flows[1:]:
        out = g.op("Or", [out, f.mask])  # type: ignore[list-item]
    return out


def _same_rank(g: GraphBuilder, flows: list[Flow]) -> list[Flow]:
    """Keras's rank broadcasting: lower-rank inputs get axes at 1 (and lose their masks)."""
    top = max(f.rank for f in flows)
    return [f if f.rank == top else Flow(g.unsqueeze(f.x, list(range(1, 1 + top - f.rank))), None, top, f.cache)
            for f in flows]


def _elementwise(op: str) -> Callable[[GraphBuilder, Any, list[Flow]], list[Flow]]:
    def lower(g: GraphBuilder, layer: Any, flows: list[Flow]) -> list[Flow]:
        mask = _or_masks(g, flows)
        xs = _same_rank(g, flows)
        out = xs[0].x
        for f in xs[1:]:
            out = g.op(op, [out, f.x])
        if type(layer).__name__ == "Average":
            out = g.op("Div", [out, g.const(np.float32(len(xs)))])
        return [Flow(g.op("Identity", [out], base=layer.name), mask, xs[0].rank, flows[0].cache)]

    return lower


def _multiply(g: GraphBuilder, layer: Any, flows: list[Flow]) -> list[Flow]:
    mask = _or_masks(g, flows)
    xs = _same_rank(g, flows)
    all_masked = all(f.mask is not None for f in xs)
    out, out_mask = None, None
    for f in xs:
        x = f.x
        if f.mask is not None:
            m = _as_rank(g, f.mask, 2, f.rank)
            x = g.op("Where", [m, x, g.const(np.float32(1.0))])  # masked steps count as 1
            if all_masked:
                out_mask = m if out_mask is None else g.op("Or", [out_mask, m])
        out = x if out is None else g.op("Mul", [out, x])
    if out_mask is not None:
        out = g.op("Where", [out_mask, out, g.const(np.float32(0.0))])  # masked in every input: 0
    return [Flow(g.op("Identity", [out], base=layer.name), mask, xs[0].rank, flows[0].cache)]


def _extremum(op: str) -> Callable[[GraphBuilder, Any, list[Flow]], list[Flow]]:
    def lower(g: GraphBuilder, layer: Any, flows: list[Flow]) -> list[Flow]:
        mask = _or_masks(g, flows)
        xs = _same_rank(g, flows)

        def expanded(f: Flow) -> str | None:
            return None if f.mask is None else _as_rank(g, f.mask, 2, f.rank)

        out, out_mask = xs[0].x, expanded(xs[0])
        for f in xs[1:]:  # a masked step of one input takes the other's value (Keras's rule)
            m, x = expanded(f), f.x
            if m is not None:
                x = g.op("Where", [m, x, out])
            if out_mask is not None:
                out = g.op("Where", [out_mask, out, x])
            out_mask = g.op("Or", [out_mask, m]) if m is not None and out_mask is not None else None
            out = g.op(op, [out, x])
        return [Flow(g.op("Identity", [out], base=layer.name), mask, xs[0].rank, flows[0].cache)]

    return lower


def _concatenate(g: GraphBuilder, layer: Any, flows: list[Flow]) -> list[Flow]:
    rank = flows[0].rank
    out = g.op("Concat", [f.x for f in flows], axis=layer.axis, base=layer.name)
    if all(f.mask is None for f in flows):
        return [Flow(out, None, rank, flows[0].cache)]
    # Keras: every input's mask broadcast to its shape (all True without one), joined along the axis,
    # then any() over the last axis.
    full = []
    for f in flows:
        shape = g.op("Shape", [f.x])
        if f.mask is None:
            full.append(g.op("Expand", [g.const(np.float32(1.0)), shape]))
        else:
            m = g.op("Cast", [f.mask], to=TensorProto.FLOAT)
            full.append(g.op("Expand", [_as_rank(g, m, 2, rank), shape]))
    joined = g.op("Concat", full, axis=layer.axis)
    mask = g.op("Cast", [g.reduce("ReduceMax", joined, [-1], keepdims=False)], to=TensorProto.BOOL)
    return [Flow(out, mask, rank, flows[0].cache)]


def _l2_normalize(g: GraphBuilder, x: str, axis: int) -> str:
    # Keras's ops.normalize(order=2): x * min(rsqrt(sum(x^2)), 1 / 1e-7)
    inv = g.op("Reciprocal", [g.op("Sqrt", [g.reduce("ReduceSum", g.op("Mul", [x, x]), [axis], keepdims=True)])])
    return g.op("Mul", [x, g.op("Min", [inv, g.const(np.float32(1.0 / 1e-7))])])


def _dot(g: GraphBuilder, layer: Any, flows: list[Flow]) -> list[Flow]:
    (a, b) = flows
    if a.rank not in (2, 3) or b.rank not in (2, 3):
        raise ExportError(f"layer {layer.name!r} (Dot) cannot be exported to ONNX: inputs of rank {a.rank} and "
                          f"{b.rank}; the exporter writes Dot for inputs of rank 2 or 3")
    a1, a2 = layer._axes_for(a.rank, b.rank)
    x, y = a.x, b.x
    if layer.normalize:
        x, y = _l2_normalize(g, x, a1), _l2_normalize(g, y, a2)
    if a.rank == 2 and b.rank == 2:
        out = g.reduce("ReduceSum", g.op("Mul", [x, y]), [1], keepdims=True)  # (B, 1)
        return [Flow(g.op("Identity", [out], base=layer.name), None, 2, a.cache)]
    x3 = g.unsqueeze(x, [1]) if a.rank == 2 else (x if a1 == 2 else g.op("Transpose", [x], perm=[0, 2, 1]))
    y3 = g.unsqueeze(y, [2]) if b.rank == 2 else (y if a2 == 1 else g.op("Transpose", [y], perm=[0, 2, 1]))
    out = g.op("MatMul", [x3, y3])
    if a.rank == 2:
        out = g.squeeze(out, [1])
    elif b.rank == 2:
        out = g.squeeze(out, [2])
    rank = 2 if 2 in (a.rank, b.rank) else 3
    return [Flow(g.op("Identity", [out], base=layer.name), None, rank, a.cache)]


def _attention(g: GraphBuilder, layer: Any, flows: list[Flow], return_attention_scores: bool = False,
               use_causal_mask: bool = False) -> list[Flow]:
    q, v = flows[0], flows[1]
    k = flows[2] if len(flows) > 2 else v
    if any(f.rank != 3 for f in (q, v, k)):
        raise ExportError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: it needs "
                          "rank-3 query, value and key")
    kind = type(layer).__name__
    if kind == "AdditiveAttention":
        t = g.op("Tanh", [g.op("Add", [g.unsqueeze(q.x, [2]), g.unsqueeze(k.x, [1])])])  # (B, Tq, Tv, dim)
        if layer.use_scale:
            t = g.op("Mul", [t, g.const(_weight(layer, "scale"), f"{layer.name}_scale")])
        scores = g.reduce("ReduceSum", t, [-1], keepdims=False)
    elif layer.score_mode == "dot":
        scores = g.op("MatMul", [q.x, g.op("Transpose", [k.x], perm=[0, 2, 1])])  # (B, Tq, Tv)
        if layer.use_scale:
            scores = g.op("Mul", [scores, g.const(_weight(layer, "scale"), f"{layer.name}_scale")])
    else:  # "concat"
        summed = g.op("Add", [g.unsqueeze(q.x, [2]), g.unsqueeze(k.x, [1])])
        if layer.use_scale:
            summed = g.op("Mul", [g.const(_weight(layer, "scale"), f"{layer.name}_scale"), summed])
        scores = g.op("Mul", [g.const(_weight(layer, "concat_score_weight"), f"{layer.name}_concat_score_weight"),
                              g.reduce("ReduceSum", g.op("Tanh", [summed]), [-1], keepdims=False)])
    keep = None if v.mask is None else g.unsqueeze(v.mask, [1])  # (B, 1, Tv)
    if use_causal_mask:
        one = g.const(np.int64(1))
        rows = g.op("Range", [one, g.op("Add", [g.squeeze(g.dim(scores, 1), [0]), one]), one])
        cols = g.op("Range", [one, g.op("Add", [g.squeeze(g.dim(scores, 2), [0]), one]), one])
        causal = g.unsqueeze(g.op("Not", [g.op("Less", [g.unsqueeze(rows, [1]), cols])]), [0])  # (1, Tq, Tv)
        keep = causal if keep is None else g.op("And", [keep, causal])
    if keep is not None:
        scores = g.op("Where", [keep, scores, g.op("Sub", [scores, g.const(np.float32(_MASK_OFFSET))])])
    weights = g.op("Softmax", [scores], axis=-1)
    out = g.op("MatMul", [weights, v.x])
    if q.mask is not None:
        out = g.op("Where", [g.unsqueeze(q.mask, [2]), out, g.const(np.float32(0.0))])
    out = g.op("Identity", [out], base=layer.name)
    flows_out = [Flow(out, q.mask, 3, q.cache)]
    if return_attention_scores:
        flows_out.append(Flow(weights, q.mask, 3, q.cache))
    return flows_out


#: layer class -> lowering of a call on a list of tensors; keyword arguments of the call are passed on.
MULTI_INPUT_LOWERINGS: dict[str, Callable[..., list[Flow]]] = {
    "Add": _elementwise("Add"),
    "Subtract": _elementwise("Sub"),
    "Average": _elementwise("Add"),
    "Multiply": _multiply,
    "Maximum": _extremum("Max"),
    "Minimum": _extremum("Min"),
    "Concatenate": _concatenate,
    "Dot": _dot,
    "Attention": _attention,
    "AdditiveAttention": _attention,
}

#: Keyword arguments of a call that a lowering accepts (plain values, not tensors).
CALL_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "Attention": ("return_attention_scores", "use_causal_mask"),
    "AdditiveAttention": ("return_attention_scores", "use_causal_mask"),
}
