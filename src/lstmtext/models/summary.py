"""Keras's ``model.summary()`` table, drawn with the same box characters, columns and totals."""

from __future__ import annotations

from typing import Any

_DEFAULT_WIDTHS = (31, 22, 13)  # Keras's column widths at its default line length of ~80
_CONNECTED_WIDTHS = (19, 17, 10, 17)  # the same with the "Connected to" column (Keras wraps cells to fit)


def readable_memory_size(num_bytes: float) -> str:
    """Keras's byte count format: ``"297.07 KB"`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num_bytes / 1024 < 1:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} PB"


def _count_line(label: str, count: int, bytes_per_value: int = 4) -> str:
    return f" {label}: {count:,} ({readable_memory_size(count * bytes_per_value)})"


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap at spaces (a word longer than the cell is cut), as the table renderer Keras uses."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return lines


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...], widths: list[int], right: set[int],
           wrap: bool = False) -> list[str]:
    def cells(values: tuple[str, ...], sep: str) -> str:
        if not wrap:
            return line(values, sep)
        wrapped = [_wrap(v, w) for v, w in zip(values, widths)]
        height = max(len(c) for c in wrapped)
        return "\n".join(line(tuple(c[k] if k < len(c) else "" for c in wrapped), sep) for k in range(height))

    def line(values: tuple[str, ...], sep: str) -> str:
        parts = [(v.rjust(w) if i in right else v.ljust(w)) for i, (v, w) in enumerate(zip(values, widths))]
        return sep + sep.join(f" {p} " for p in parts) + sep

    def rule(left: str, fill: str, mid: str, end: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + end

    out = [rule("┏", "━", "┳", "┓"), cells(header, "┃"), rule("┡", "━", "╇", "┩")]
    for i, row in enumerate(rows):
        out.append(cells(row, "│"))
        out.append(rule("├", "─", "┼", "┤") if i < len(rows) - 1 else rule("└", "─", "┴", "┘"))
    if not rows:
        out.append(rule("└", "─", "┴", "┘"))
    return out


def format_summary(model: Any, line_length: int | None = None, show_trainable: bool = False) -> str:
    """The summary text of a Sequential model (see ``keras.Model.summary``).

    Unbuilt layers show ``?`` and ``0 (unbuilt)``, as in Keras 3. When the model is compiled and its
    optimizer has state, an ``Optimizer params`` line is added and counted in the total, like Keras.
    """
    graph = getattr(model, "_graph", None)
    if graph is not None and not hasattr(model, "build_input_shape"):
        return _functional_summary(model, graph, show_trainable)
    rows: list[tuple[str, ...]] = []
    shape = getattr(model, "build_input_shape", None) if model.built else None
    for layer in model.layers:
        name = f"{layer.name} ({type(layer).__name__})"
        if shape is not None and layer.built:
            shape = layer.compute_output_shape(shape)
            out, params = str(tuple(shape)), f"{layer.count_params():,}"
        else:  # unbuilt, or a subclassed model's layer (built by call(), shapes not recorded)
            shape, out = None, "?"
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        row: tuple[str, ...] = (name, out, params)
        if show_trainable:
            row = (*row, "Y" if layer.trainable else "N")
        rows.append(row)
    return _finish(model, rows, line_length, show_trainable)


def _finish(model: Any, rows: list[tuple[str, ...]], line_length: int | None, show_trainable: bool,
            connected: bool = False) -> str:
    header: tuple[str, ...] = ("Layer (type)", "Output Shape", "Param #")
    if connected:
        header = (*header, "Connected to")
    if show_trainable:
        header = (*header, "Trainable")
    widths = list(_CONNECTED_WIDTHS if connected else _DEFAULT_WIDTHS) + ([9] if show_trainable else [])
    if line_length is not None and line_length > sum(widths) + 3 * len(widths) + 1:
        widths[0] += line_length - (sum(widths) + 3 * len(widths) + 1)
    if not connected:
        for r in [header, *rows]:
            widths = [max(w, len(c)) for w, c in zip(widths, r)]
    lines = [f'Model: "{model.name}"', *_table(rows, header, widths, right={2}, wrap=connected)]

    built = model.built
    trainable = sum(w.numel() for w in model.trainable_weights) if built else 0
    non_trainable = sum(w.numel() for w in model.non_trainable_weights) if built else 0
    opt = getattr(model, "optimizer", None)
    opt_count = opt.variables_count() if opt is not None and getattr(opt, "built", False) else 0
    lines.append(_count_line("Total params", trainable + non_trainable + opt_count))
    lines.append(_count_line("Trainable params", trainable))
    lines.append(_count_line("Non-trainable params", non_trainable))
    if opt_count:
        lines.append(_count_line("Optimizer params", opt_count))
    return "\n".join(lines)


def _shape_text(outputs: Any) -> str:
    from lstmtext.layers.symbolic import flatten

    shapes = [str(tuple(t.shape)) for t in flatten(outputs)]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _functional_summary(model: Any, graph: Any, show_trainable: bool) -> str:
    """Keras's table for a Functional model: a "Connected to" column unless the graph is a plain stack."""
    own = {id(n) for n in graph.nodes}
    nodes_in = [n for la in graph.layers for n in la._inbound_nodes if id(n) in own]
    sequential_like = all(len(n.input_tensors) <= 1 for n in nodes_in) and len(graph.inputs) == 1 and all(
        sum(1 for n in la._inbound_nodes if id(n) in own) <= 1 for la in graph.layers) and all(
        sum(1 for m in nodes_in if any(t.node is n for t in m.input_tensors)) <= 1 for n in nodes_in)
    rows: list[tuple[str, ...]] = []
    for layer in graph.layers:
        mine = [n for n in layer._inbound_nodes if id(n) in own] or layer._inbound_nodes[:1]
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        row: tuple[str, ...] = (f"{layer.name} ({type(layer).__name__})", _shape_text(mine[-1].outputs), params)
        if not sequential_like:
            links = []
            for node in mine:
                for t in node.input_tensors:
                    source, node_index, tensor_index = t.history
                    node_index += 1 if hasattr(source, "_graph") and not hasattr(source, "build_input_shape") else 0
                    links.append(f"{source.name}[{node_index}][{tensor_index}]")
            row = (*row, ", ".join(links) or "-")
        if show_trainable:
            row = (*row, ("Y" if layer.trainable else "N") if layer.weights else "-")
        rows.append(row)
    return _finish(model, rows, None, show_trainable, connected=not sequential_like)
