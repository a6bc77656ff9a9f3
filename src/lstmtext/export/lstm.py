"""Keras's (masked) LSTM and Bidirectional as ONNX's native ``LSTM`` operator.

**Weights.** ONNX orders the gates i, o, f, c (Keras: i, f, c, o) and stores ``W (dirs, 4u, in)``,
``R (dirs, 4u, u)`` and ``B (dirs, 8u)`` (input bias then recurrent bias); see
:func:`keras_to_onnx_lstm_weights`.

**Masks.** Keras's rule (checked against Keras 3.15 in ``lstmtext.layers``): a masked step carries the
state ``(h, c)`` unchanged and outputs the previous output (zeros before the first real step), or zeros
with ``zero_output_for_mask`` (what Bidirectional sets with ``return_sequences``). So the states only ever
advance on the real steps, in order: the masked LSTM equals an LSTM over the real steps alone. ONNX's
``LSTM`` takes ``sequence_lens``: each row's first ``len`` steps are real, the rest are ignored (their
outputs are zeros, ``Y_h`` is the state after step ``len - 1``, and the ``reverse`` direction runs from
``len - 1`` down to 0). The graph therefore

1. moves each row's real steps to its front, in time order: ``TopK`` of ``t + T * (not mask)`` (smallest
   first) gives their positions, ``GatherElements`` the compacted input; ``len`` = the number of real steps;
2. runs ``LSTM`` on it, ``direction="reverse"`` for ``go_backwards`` (or the backward half of a
   Bidirectional: one ``"bidirectional"`` operator when both halves match);
3. puts the outputs back on the time axis for ``return_sequences``: the output at step ``t`` is the
   compacted output number ``cumsum(mask)[t] - 1`` (forwards; ``total - reverse_cumsum(mask)[t]``
   backwards), zero where no real step has been read yet, or where ``mask[t]`` is False with
   ``zero_output_for_mask``; ``go_backwards`` output is then flipped into processing order as Keras does.

This is exact for every mask (left or right padding, gaps, fully padded rows: ``len = 0`` gives zeros,
as the PyTorch path does with its zero initial state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import TensorProto

from lstmtext.errors import ExportError
from lstmtext.export.graph import LSTM_ACTIVATIONS, GraphBuilder, activation_name

_GATES_KERAS_TO_ONNX = (0, 3, 1, 2)  # Keras blocks i, f, c, o -> ONNX i, o, f, c


def keras_to_onnx_lstm_weights(
    kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map one Keras LSTM's weights to the inputs ``W``, ``R``, ``B`` of ONNX's ``LSTM`` (one direction).

    Args:
        kernel: ``(input_dim, 4u)``, gate blocks i, f, c, o.
        recurrent_kernel: ``(u, 4u)``.
        bias: ``(4u,)`` or None (``use_bias=False``).

    Returns:
        ``W (1, 4u, input_dim)``, ``R (1, 4u, u)``, ``B (1, 8u)``, float32, gate blocks i, o, f, c; the Keras
        bias is the input bias ``Wb`` and the recurrent bias ``Rb`` is zero (ONNX adds the two).

    >>> w, r, b = keras_to_onnx_lstm_weights(np.zeros((15, 40)), np.zeros((10, 40)), np.zeros(40))
    >>> w.shape, r.shape, b.shape
    ((1, 40, 15), (1, 40, 10), (1, 80))
    """
    u = recurrent_kernel.shape[0]

    def reorder(m: np.ndarray) -> np.ndarray:  # (rows, 4u) -> (4u, rows), gate blocks reordered
        return np.concatenate([m[:, g * u:(g + 1) * u] for g in _GATES_KERAS_TO_ONNX], axis=1).T

    b = np.zeros(4 * u, dtype=np.float32) if bias is None else np.asarray(bias, dtype=np.float32)
    wb = np.concatenate([b[g * u:(g + 1) * u] for g in _GATES_KERAS_TO_ONNX])
    w = reorder(np.asarray(kernel, dtype=np.float32))[None]
    r = reorder(np.asarray(recurrent_kernel, dtype=np.float32))[None]
    return (np.ascontiguousarray(w), np.ascontiguousarray(r),
            np.concatenate([wb, np.zeros(4 * u, dtype=np.float32)])[None])


@dataclass
class MaskInfo:
    """Tensors derived once per mask (names in the graph)."""

    mask: str  #: (B, T) bool, True for a real step
    order: str  #: (B, T) int64: positions of the real steps in time order, then the padded ones
    lens: str  #: (B,) int32: real steps per row (``sequence_lens``)
    cum: str  #: (B, T) int64: real steps in [0, t]
    rcum: str  #: (B, T) int64: real steps in [t, T)
    total: str  #: (B, 1) int64: real steps per row


def mask_info(g: GraphBuilder, mask: str, cache: dict[str, MaskInfo]) -> MaskInfo:
    """The compaction indices and counts of ``mask`` (built once per mask tensor)."""
    if mask in cache:
        return cache[mask]
    steps = g.dim(mask, 1)  # (1,) int64
    t = g.op("Range", [g.const(np.int64(0)), g.squeeze(steps, [0]), g.const(np.int64(1))], base="steps")
    m64 = g.op("Cast", [mask], to=TensorProto.INT64)
    padded = g.op("Cast", [g.op("Not", [mask])], to=TensorProto.INT64)
    key = g.op("Add", [g.op("Mul", [padded, steps]), t], base="compaction_key")  # (B, T), distinct per row
    _, order = g.op("TopK", [key, steps], outputs=2, axis=1, largest=0, sorted=1, base="compaction")
    total = g.reduce("ReduceSum", m64, [1], keepdims=True)
    lens = g.op("Cast", [g.squeeze(total, [1])], to=TensorProto.INT32, base="sequence_lens")
    axis = g.const(np.int64(1))
    cum = g.op("CumSum", [m64, axis], base="real_steps_before")
    rcum = g.op("CumSum", [m64, axis], reverse=1, base="real_steps_after")
    info = MaskInfo(mask=mask, order=order, lens=lens, cum=cum, rcum=rcum, total=total)
    cache[mask] = info
    return info


def _gather_steps(g: GraphBuilder, x: str, index: str) -> str:
    """``x[b, index[b, t], :]`` for ``x`` ``(B, T, F)`` and ``index`` ``(B, T)``."""
    idx = g.op("Expand", [g.unsqueeze(index, [2]), g.op("Shape", [x])])
    return g.op("GatherElements", [x, idx], axis=1)


def check_lstm(layer: Any) -> None:
    """Raise :class:`ExportError` naming ``layer`` and the option ONNX's LSTM (or this exporter) cannot express."""
    reasons = []
    if layer.stateful:
        reasons.append("stateful=True (its state carries over between calls; an ONNX graph has no memory)")
    if layer.return_state:
        reasons.append("return_state=True (a Sequential model passes on one tensor)")
    if layer.time_major:
        reasons.append("time_major=True is not supported by the exporter")
    if layer.cell.dtype_name != "float32":
        reasons.append(f"dtype {layer.cell.dtype_name} (the exported graph and onnxruntime's LSTM are float32)")
    for arg in ("recurrent_activation", "activation"):
        fn = getattr(layer.cell, arg)
        name = activation_name(fn)
        if name is None:
            reasons.append(f"{arg} {fn!r} is a custom callable, which ONNX's LSTM cannot run")
        elif name not in LSTM_ACTIVATIONS:
            reasons.append(f"{arg} {name!r} is not one of ONNX LSTM's activations "
                           f"(supported: {', '.join(sorted(LSTM_ACTIVATIONS))})")
    if reasons:
        raise ExportError(f"layer {layer.name!r} (LSTM) cannot be exported to ONNX: {'; '.join(reasons)}")


def _activations(layer: Any) -> tuple[list[str], list[float], list[float]]:
    names, alphas, betas = [], [], []
    for fn in (layer.cell.recurrent_activation, layer.cell.activation, layer.cell.activation):  # f, g, h
        op, alpha, beta = LSTM_ACTIVATIONS[activation_name(fn)]  # type: ignore[index]
        names.append(op)
        alphas += [] if alpha is None else [alpha]
        betas += [] if beta is None else [beta]
    return names, alphas, betas


def _lstm_op(g: GraphBuilder, x_tbf: str, layers: list[Any], lens: str | None, sequences: bool,
             base: str) -> tuple[list[str | None], list[str]]:
    """One ONNX LSTM over ``x_tbf`` (T, B, F) for one layer, or two (forward + reverse) as ``bidirectional``.

    Returns per layer the outputs ``(B, T, u)`` in time order (None unless ``sequences``) and the last
    states ``(B, u)``.
    """
    ws, rs, bs = zip(*(keras_to_onnx_lstm_weights(
        la.cell.kernel.detach().cpu().numpy(), la.cell.recurrent_kernel.detach().cpu().numpy(),
        None if la.cell.bias is None else la.cell.bias.detach().cpu().numpy()) for la in layers))
    if len(layers) == 2:
        direction = "bidirectional"
    else:
        direction = "reverse" if layers[0].go_backwards else "forward"
    acts = [_activations(la) for la in layers]
    attrs: dict[str, Any] = {"hidden_size": layers[0].units, "direction": direction}
    if any(a[0] != ["Sigmoid", "Tanh", "Tanh"] for a in acts):
        attrs["activations"] = [n for a in acts for n in a[0]]
        if any(a[1] for a in acts):
            attrs["activation_alpha"] = [v for a in acts for v in a[1]]
        if any(a[2] for a in acts):
            attrs["activation_beta"] = [v for a in acts for v in a[2]]
    inputs = [x_tbf, g.const(np.concatenate(ws), f"{base}_W"), g.const(np.concatenate(rs), f"{base}_R"),
              g.const(np.concatenate(bs), f"{base}_B"), lens or ""]
    y_name, yh_name = (g.name(f"{base}_Y") if sequences else ""), g.name(f"{base}_Y_h")
    g.nodes.append(_node("LSTM", inputs, [y_name, yh_name], g.name(f"{base}_node"), attrs))
    seqs: list[str | None] = []
    lasts: list[str] = []
    for d in range(len(layers)):
        di = g.const(np.int64(d))
        lasts.append(g.op("Gather", [yh_name, di], axis=0, base=f"{base}_last"))
        if sequences:
            y_d = g.op("Gather", [y_name, di], axis=1)  # (T, B, u)
            seqs.append(g.op("Transpose", [y_d], perm=[1, 0, 2], base=f"{base}_seq"))
        else:
            seqs.append(None)
    return seqs, lasts


def _node(op: str, inputs: list[str], outputs: list[str], name: str, attrs: dict[str, Any]) -> Any:
    from onnx import helper

    while inputs and inputs[-1] == "":  # trailing optional inputs may be left out
        inputs = inputs[:-1]
    return helper.make_node(op, inputs, outputs, name=name, **attrs)


def _time_outputs(g: GraphBuilder, layer: Any, seq: str | None, last: str, info: MaskInfo | None) -> str:
    """A layer's Keras outputs with masking applied: ``(B, T, u)`` in time order, or the last ``(B, u)``."""
    zero = g.const(np.float32(0.0))
    if not layer.return_sequences:
        if info is not None and layer.zero_output_for_mask:
            # the last processed step outputs zeros when it is masked
            step = g.const(np.int64(0 if layer.go_backwards else -1))
            real = g.unsqueeze(g.op("Gather", [info.mask, step], axis=1), [1])
            return g.op("Where", [real, last, zero])
        return last
    if info is None:
        return seq  # type: ignore[return-value]
    if layer.go_backwards:
        index = g.op("Sub", [info.total, info.rcum])
        seen = g.op("Greater", [info.rcum, g.const(np.int64(0))])
    else:
        index = g.op("Max", [g.op("Sub", [info.cum, g.const(np.int64(1))]), g.const(np.int64(0))])
        seen = g.op("Greater", [info.cum, g.const(np.int64(0))])
    keep = info.mask if layer.zero_output_for_mask else seen
    gathered = _gather_steps(g, seq, index)  # type: ignore[arg-type]
    return g.op("Where", [g.unsqueeze(keep, [2]), gathered, zero])


def _run(g: GraphBuilder, x: str, mask: str | None, layers: list[Any], cache: dict[str, MaskInfo],
         base: str) -> list[str]:
    """Run ``layers`` (one LSTM, or a Bidirectional's two) over ``x`` (B, T, F); time-ordered outputs."""
    for la in layers:
        check_lstm(la)
    info = mask_info(g, mask, cache) if mask is not None else None
    x_in = _gather_steps(g, x, info.order) if info is not None else x
    x_tbf = g.op("Transpose", [x_in], perm=[1, 0, 2])
    seqs_needed = layers[0].return_sequences
    pairs: list[tuple[str | None, str]] = []
    one_op = len(layers) == 2 and _same_cell(*layers) and not layers[0].go_backwards and layers[1].go_backwards
    if one_op:
        seqs, lasts = _lstm_op(g, x_tbf, layers, info.lens if info else None, seqs_needed, base)
        pairs = list(zip(seqs, lasts))
    else:
        for i, la in enumerate(layers):
            seqs, lasts = _lstm_op(g, x_tbf, [la], info.lens if info else None, seqs_needed,
                                   base if len(layers) == 1 else f"{base}_{i}")
            pairs.append((seqs[0], lasts[0]))
    return [_time_outputs(g, la, seq, last, info) for la, (seq, last) in zip(layers, pairs)]


def _same_cell(a: Any, b: Any) -> bool:
    return a.units == b.units and _activations(a) == _activations(b)


def lower_lstm(g: GraphBuilder, layer: Any, x: str, mask: str | None, cache: dict[str, MaskInfo]) -> str:
    """Append an :class:`~lstmtext.layers.LSTM` (Keras outputs: go_backwards sequences in processing order)."""
    out = _run(g, x, mask, [layer], cache, layer.name)[0]
    if layer.return_sequences and layer.go_backwards:
        out = g.flip(out, 1)
    return out


def lower_bidirectional(g: GraphBuilder, layer: Any, x: str, mask: str | None, cache: dict[str, MaskInfo]) -> str:
    """Append a :class:`~lstmtext.layers.Bidirectional` with its merge mode."""
    fwd, bwd = layer.forward_layer, layer.backward_layer
    if layer.merge_mode is None:
        raise ExportError(f"layer {layer.name!r} (Bidirectional) cannot be exported to ONNX: merge_mode=None "
                          "returns two tensors, and a Sequential model passes on one")
    if layer.return_state:
        raise ExportError(f"layer {layer.name!r} (Bidirectional) cannot be exported to ONNX: return_state=True "
                          "(a Sequential model passes on one tensor)")
    y, y_rev = _run(g, x, mask, [fwd, bwd], cache, layer.name)
    if layer.return_sequences:
        # Keras: each half's output is in its processing order, and the backward half's is flipped back.
        if fwd.go_backwards:
            y = g.flip(y, 1)
        if not bwd.go_backwards:
            y_rev = g.flip(y_rev, 1)
    if layer.merge_mode == "concat":
        return g.op("Concat", [y, y_rev], axis=-1)
    if layer.merge_mode == "sum":
        return g.op("Add", [y, y_rev])
    if layer.merge_mode == "mul":
        return g.op("Mul", [y, y_rev])
    return g.op("Mul", [g.op("Add", [y, y_rev]), g.const(np.float32(0.5))])  # "ave": (y + y_rev) / 2
