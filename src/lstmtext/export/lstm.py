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
   first) gives their positions, one ``Gather`` on the flattened ``(B * T, F)`` input the compacted
   ``(T, B, F)`` input; ``len`` = the number of real steps;
2. runs ``LSTM`` on it, ``direction="reverse"`` for ``go_backwards`` (or the backward half of a
   Bidirectional: one ``"bidirectional"`` operator when both halves match); padded steps cost nothing;
3. puts the outputs back on the time axis for ``return_sequences``, with one ``Gather`` from the flattened
   outputs plus a zero row: step ``t`` outputs compacted output number ``cumsum(mask)[t] - 1`` (forwards;
   ``total - reverse_cumsum(mask)[t]`` backwards), or the zero row where no real step has been read yet,
   or where ``mask[t]`` is False with ``zero_output_for_mask``; ``go_backwards`` output is then flipped into
   processing order as Keras does.

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
    """Tensors derived once per mask (names in the graph). Steps are addressed in the flattened
    ``(B * T, ...)`` view of a batch-major tensor: row ``b``, step ``t`` is ``b * T + t``."""

    mask: str  #: (B, T) bool, True for a real step
    gather_in: str  #: (T, B) int64: flat position of the k-th real step of each row, then of the padded ones
    lens: str  #: (B,) int32: real steps per row (``sequence_lens``)
    cum: str  #: (B, T) int64: real steps in [0, t]
    rcum: str  #: (B, T) int64: real steps in [t, T)
    total: str  #: (B, 1) int64: real steps per row
    row_start: str  #: (B, 1) int64: b * T
    size: str  #: (1,) int64: B * T, the index of the zero row appended to flattened outputs


def mask_info(g: GraphBuilder, mask: str, cache: dict[str, MaskInfo]) -> MaskInfo:
    """The compaction indices and counts of ``mask`` (built once per mask tensor)."""
    if mask in cache:
        return cache[mask]
    batch, steps = g.dim(mask, 0), g.dim(mask, 1)  # (1,) int64 each
    one = g.const(np.int64(1))
    t = g.op("Range", [g.const(np.int64(0)), g.squeeze(steps, [0]), one], base="steps")
    m64 = g.op("Cast", [mask], to=TensorProto.INT64)
    padded = g.op("Cast", [g.op("Not", [mask])], to=TensorProto.INT64)
    key = g.op("Add", [g.op("Mul", [padded, steps]), t], base="compaction_key")  # (B, T), distinct per row
    _, order = g.op("TopK", [key, steps], outputs=2, axis=1, largest=0, sorted=1, base="compaction")
    rows = g.op("Range", [g.const(np.int64(0)), g.squeeze(batch, [0]), one], base="rows")
    row_start = g.op("Mul", [g.unsqueeze(rows, [1]), steps], base="row_start")  # (B, 1)
    gather_in = g.op("Transpose", [g.op("Add", [order, row_start])], perm=[1, 0], base="compaction_index")
    total = g.reduce("ReduceSum", m64, [1], keepdims=True)
    lens = g.op("Cast", [g.squeeze(total, [1])], to=TensorProto.INT32, base="sequence_lens")
    axis = g.const(np.int64(1))
    cum = g.op("CumSum", [m64, axis], base="real_steps_before")
    rcum = g.op("CumSum", [m64, axis], reverse=1, base="real_steps_after")
    info = MaskInfo(mask=mask, gather_in=gather_in, lens=lens, cum=cum, rcum=rcum, total=total,
                    row_start=row_start, size=g.op("Mul", [batch, steps], base="flat_size"))
    cache[mask] = info
    return info


def _compacted_input(g: GraphBuilder, x: str, features: int, info: MaskInfo) -> str:
    """``(T, B, F)``: each row's real steps first, in time order (one Gather on the flattened input)."""
    flat = g.op("Reshape", [x, g.const(np.array([-1, features], np.int64))])  # (B*T, F)
    return g.op("Gather", [flat, info.gather_in], axis=0, base="compacted")


def check_lstm(layer: Any, states: bool = False) -> None:
    """Raise :class:`ExportError` naming ``layer`` and the option ONNX's LSTM (or this exporter) cannot express.

    ``states``: the caller writes ``return_state``'s outputs (a layer-graph node), so it is allowed.
    """
    reasons = []
    if layer.stateful:
        reasons.append("stateful=True (its state carries over between calls; an ONNX graph has no memory)")
    if layer.return_state and not states:
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
             base: str, initial: tuple[str, str] | None = None,
             cells: bool = False) -> tuple[str | None, list[str], list[str]]:
    """One ONNX LSTM over ``x_tbf`` (T, B, F) for one layer, or two (forward + reverse) as ``bidirectional``.

    ``initial``: one layer's initial ``(h, c)``, each ``(B, u)`` (zeros when None).

    Returns ``Y`` ``(T, dirs, B, u)`` (None unless ``sequences``), each direction's last output state
    ``(B, u)`` and (with ``cells``) each direction's last cell state ``(B, u)``.
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
    if initial is not None:
        inputs += [g.unsqueeze(initial[0], [0]), g.unsqueeze(initial[1], [0])]  # (1, B, u) each
    y_name, yh_name = (g.name(f"{base}_Y") if sequences else ""), g.name(f"{base}_Y_h")
    outputs = [y_name, yh_name] + ([g.name(f"{base}_Y_c")] if cells else [])
    g.nodes.append(_node("LSTM", inputs, outputs, g.name(f"{base}_node"), attrs))
    lasts = [g.op("Gather", [yh_name, g.const(np.int64(d))], axis=0, base=f"{base}_last") for d in range(len(layers))]
    last_cells = [g.op("Gather", [outputs[2], g.const(np.int64(d))], axis=0, base=f"{base}_cell")
                  for d in range(len(layers))] if cells else []
    return (y_name or None), lasts, last_cells


def _node(op: str, inputs: list[str], outputs: list[str], name: str, attrs: dict[str, Any]) -> Any:
    from onnx import helper

    while inputs and inputs[-1] == "":  # trailing optional inputs may be left out
        inputs = inputs[:-1]
    return helper.make_node(op, inputs, outputs, name=name, **attrs)


def _last_output(g: GraphBuilder, layer: Any, last: str, info: MaskInfo | None) -> str:
    """A layer's last output ``(B, u)``; with ``zero_output_for_mask`` zero when its last processed step is masked."""
    if info is not None and layer.zero_output_for_mask:
        step = g.const(np.int64(0 if layer.go_backwards else -1))
        real = g.unsqueeze(g.op("Gather", [info.mask, step], axis=1), [1])
        return g.op("Where", [real, last, g.const(np.float32(0.0))])
    return last


def _output_index(g: GraphBuilder, layer: Any, info: MaskInfo) -> str:
    """``(B, T)`` flat row of the compacted outputs that step ``t`` outputs (``B * T``, a zero row, for none)."""
    if layer.go_backwards:
        index = g.op("Sub", [info.total, info.rcum])
        seen = g.op("Greater", [info.rcum, g.const(np.int64(0))])
    else:
        index = g.op("Sub", [info.cum, g.const(np.int64(1))])
        seen = g.op("Greater", [info.cum, g.const(np.int64(0))])
    keep = info.mask if layer.zero_output_for_mask else seen
    return g.op("Where", [keep, g.op("Add", [index, info.row_start]), info.size], base=f"{layer.name}_out_index")


def _sequence_outputs(g: GraphBuilder, y: str, layers: list[Any], info: MaskInfo | None) -> tuple[list[str], str]:
    """Each direction's ``(B, T, u)`` outputs in time order, and all of them side by side ``(B, T, dirs*u)``."""
    units, dirs = layers[0].units, len(layers)
    ybt = g.op("Transpose", [y], perm=[2, 0, 1, 3])  # (B, T, dirs, u)
    if info is None:
        both = g.op("Reshape", [ybt, g.const(np.array([0, 0, -1], np.int64))])
        if dirs == 1:
            return [both], both
    else:
        flat = g.op("Reshape", [ybt, g.const(np.array([-1, dirs * units], np.int64))])  # (B*T, dirs*u)
        rows = g.op("Concat", [flat, g.const(np.zeros((1, dirs * units), np.float32))], axis=0)
        index = [_output_index(g, la, info) for la in layers]
        # Bidirectional's halves read the same rows: both output zeros at masked steps, and at a real step
        # cumsum(mask)[t] - 1 = total - reverse_cumsum(mask)[t] = that step's rank.
        if dirs == 1 or all(la.zero_output_for_mask for la in layers):
            both = g.op("Gather", [rows, index[0]], axis=0)
            if dirs == 1:
                return [both], both
        else:
            halves = [g.op("Gather", [_columns(g, rows, d * units, (d + 1) * units, 1), index[d]], axis=0)
                      for d in range(dirs)]
            return halves, g.op("Concat", halves, axis=-1)
    return [_columns(g, both, d * units, (d + 1) * units, 2) for d in range(dirs)], both


def _columns(g: GraphBuilder, x: str, start: int, end: int, axis: int) -> str:
    return g.op("Slice", [x, g.const(np.array([start], np.int64)), g.const(np.array([end], np.int64)),
                          g.const(np.array([axis], np.int64))])


def _run(g: GraphBuilder, x: str, mask: str | None, layers: list[Any], cache: dict[str, MaskInfo],
         base: str, initial: tuple[str, str] | None = None,
         states: list[str] | None = None) -> tuple[list[str], str | None]:
    """Run ``layers`` (one LSTM, or a Bidirectional's two) over ``x`` (B, T, F).

    ``initial``: one LSTM's initial ``(h, c)``. ``states``: a list that receives one LSTM's final ``h, c``
    (a row without real steps keeps its initial state, as in Keras).

    Returns each layer's outputs (``(B, T, u)`` in time order, or the last ``(B, u)``) and, when the
    two halves of a Bidirectional ran as one operator, their sequences side by side (else None).
    """
    for la in layers:
        check_lstm(la, states=states is not None)
    info = mask_info(g, mask, cache) if mask is not None else None
    features = int(layers[0].cell.kernel.shape[0])
    x_tbf = _compacted_input(g, x, features, info) if info is not None else g.op("Transpose", [x], perm=[1, 0, 2])
    lens = info.lens if info is not None else None
    sequences = layers[0].return_sequences
    one_op = len(layers) == 2 and _same_cell(*layers) and not layers[0].go_backwards and layers[1].go_backwards
    groups = [layers] if one_op or len(layers) == 1 else [[la] for la in layers]
    outs: list[str] = []
    combined = None
    for i, group in enumerate(groups):
        y, lasts, cells = _lstm_op(g, x_tbf, group, lens, sequences, base if len(groups) == 1 else f"{base}_{i}",
                                   initial, cells=states is not None)
        if states is not None:
            for h, c in zip(lasts, cells):  # each direction's (a Bidirectional's forward, then backward)
                if info is not None:  # sequence_lens 0: the state is the initial one (zeros without one)
                    ran = g.unsqueeze(g.op("Greater", [info.lens, g.const(np.int32(0))]), [1])
                    h0 = initial[0] if initial is not None else g.const(np.float32(0.0))
                    c0 = initial[1] if initial is not None else g.const(np.float32(0.0))
                    h, c = g.op("Where", [ran, h, h0]), g.op("Where", [ran, c, c0])
                states += [h, c]
        if sequences:
            seqs, both = _sequence_outputs(g, y, group, info)  # type: ignore[arg-type]
            outs += seqs
            combined = both if len(group) == 2 else None
        else:
            outs += [_last_output(g, la, last, info) for la, last in zip(group, lasts)]
    return outs, combined


def _same_cell(a: Any, b: Any) -> bool:
    return a.units == b.units and _activations(a) == _activations(b)


def lower_lstm(g: GraphBuilder, layer: Any, x: str, mask: str | None, cache: dict[str, MaskInfo]) -> str:
    """Append an :class:`~lstmtext.layers.LSTM` (Keras outputs: go_backwards sequences in processing order)."""
    out = _run(g, x, mask, [layer], cache, layer.name)[0][0]
    if layer.return_sequences and layer.go_backwards:
        out = g.flip(out, 1)
    return out


def lower_lstm_node(g: GraphBuilder, layer: Any, x: str, mask: str | None, cache: dict[str, MaskInfo],
                    initial: tuple[str, str] | None) -> list[str]:
    """An LSTM call of a layer graph: ``initial_state=[h, c]`` and ``return_state`` (``[output, h, c]``)."""
    states: list[str] | None = [] if layer.return_state else None
    if initial is not None and states is None:
        states = []
    out = _run(g, x, mask, [layer], cache, layer.name, initial, states)[0][0]
    if layer.return_sequences and layer.go_backwards:
        out = g.flip(out, 1)
    return [out, *states] if layer.return_state and states is not None else [out]


def lower_bidirectional(g: GraphBuilder, layer: Any, x: str, mask: str | None, cache: dict[str, MaskInfo],
                        states: list[str] | None = None) -> str:
    """Append a :class:`~lstmtext.layers.Bidirectional` with its merge mode.

    ``states``: a list that receives the final ``h, c`` of the forward then the backward layer
    (``return_state`` in a layer graph); without it, ``return_state`` is refused.
    """
    fwd, bwd = layer.forward_layer, layer.backward_layer
    if layer.merge_mode is None:
        raise ExportError(f"layer {layer.name!r} (Bidirectional) cannot be exported to ONNX: merge_mode=None "
                          "returns two tensors, and a Sequential model passes on one")
    if layer.return_state and states is None:
        raise ExportError(f"layer {layer.name!r} (Bidirectional) cannot be exported to ONNX: return_state=True "
                          "(a Sequential model passes on one tensor)")
    (y, y_rev), both = _run(g, x, mask, [fwd, bwd], cache, layer.name, states=states)
    if layer.merge_mode == "concat" and both is not None:
        return both  # one bidirectional operator: its outputs are already side by side, in time order
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
