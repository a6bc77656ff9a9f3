"""Keras's ``model.summary()`` table, drawn with the same box characters, columns and totals."""

from __future__ import annotations

from typing import Any

_DEFAULT_WIDTHS = (31, 22, 13)  # Keras's column widths at its default line length of ~80


def readable_memory_size(num_bytes: float) -> str:
    """Keras's byte count format: ``"297.07 KB"`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num_bytes / 1024 < 1:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} PB"


def _count_line(label: str, count: int, bytes_per_value: int = 4) -> str:
    return f" {label}: {count:,} ({readable_memory_size(count * bytes_per_value)})"


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...], widths: list[int], right: set[int]) -> list[str]:
    def cells(values: tuple[str, ...], sep: str) -> str:
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
    rows: list[tuple[str, ...]] = []
    shape = model.build_input_shape if model.built else None
    for layer in model.layers:
        name = f"{layer.name} ({type(layer).__name__})"
        if shape is not None and layer.built:
            shape = layer.compute_output_shape(shape)
            out, params = str(tuple(shape)), f"{layer.count_params():,}"
        else:
            shape, out, params = None, "?", "0 (unbuilt)"
        row: tuple[str, ...] = (name, out, params)
        if show_trainable:
            row = (*row, "Y" if layer.trainable else "N")
        rows.append(row)
    header: tuple[str, ...] = ("Layer (type)", "Output Shape", "Param #")
    if show_trainable:
        header = (*header, "Trainable")
    widths = list(_DEFAULT_WIDTHS) + ([9] if show_trainable else [])
    if line_length is not None and line_length > sum(widths) + 3 * len(widths) + 1:
        widths[0] += line_length - (sum(widths) + 3 * len(widths) + 1)
    for r in [header, *rows]:
        widths = [max(w, len(c)) for w, c in zip(widths, r)]
    lines = [f'Model: "{model.name}"', *_table(rows, header, widths, right={2})]

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
