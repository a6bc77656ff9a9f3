"""Symbolic tensors and graph nodes: what calling a layer on ``Input(...)`` builds (Keras's ``KerasTensor``/``Node``).

A :class:`KerasTensor` has a shape (``None`` for a dimension known only at run time), a dtype, whether a mask
travels with it, and its history: the layer call (:class:`Node`) that made it. Models
(:mod:`lstmtext.models.graph`) walk these nodes back from their outputs to their inputs and run them in order.

Nested structures (lists, tuples, dicts of tensors) are handled by :func:`flatten` / :func:`pack_like`,
with Keras's rule that dicts are walked in sorted key order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int | None, ...]


def flatten(structure: Any) -> list[Any]:
    """The leaves of a nest of lists, tuples and dicts (dicts in sorted key order, as ``keras.tree``)."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    return [structure]


def pack_like(structure: Any, leaves: list[Any]) -> Any:
    """The inverse of :func:`flatten`: ``leaves`` put back into the shape of ``structure``."""
    it = iter(leaves)

    def build(s: Any) -> Any:
        if isinstance(s, (list, tuple)):
            return type(s)(build(item) for item in s)
        if isinstance(s, dict):
            # Keys are consumed in sorted order (as flatten), but the dict keeps its own order.
            values = {key: build(s[key]) for key in sorted(s)}
            return {key: values[key] for key in s}
        return next(it)

    return build(structure)


def map_structure(fn: Callable[[Any], Any], structure: Any) -> Any:
    """``structure`` with ``fn`` applied to every leaf."""
    return pack_like(structure, [fn(leaf) for leaf in flatten(structure)])


@dataclass(eq=False)
class KerasTensor:
    """A symbolic tensor: the output of ``Input(...)`` or of a layer called on symbolic tensors.

    Attributes:
        shape: the shape, batch axis first; ``None`` where only the data will tell.
        dtype: ``"float32"``, ``"int32"``, ``"int64"``, ``"string"`` ...
        name: a name (the input's name for :func:`~lstmtext.layers.Input`).
        mask_shape: the shape of the mask that travels with it (``(batch, time)``), or None without a mask.
        history: ``(layer, node_index, tensor_index)``: the layer call that made it.
    """

    shape: Shape
    dtype: str = "float32"
    name: str | None = None
    mask_shape: Shape | None = None
    history: tuple[Any, int, int] | None = field(default=None, repr=False)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def node(self) -> Node | None:
        """The :class:`Node` that made this tensor."""
        if self.history is None:
            return None
        layer, node_index, _ = self.history
        return layer._inbound_nodes[node_index]

    # Keras's spelling, used by code written for it.
    @property
    def _keras_history(self) -> tuple[Any, int, int] | None:
        return self.history

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __bool__(self) -> bool:
        raise TypeError("a symbolic KerasTensor has no truth value: it only describes the data a model will get; "
                        "use layers on it, and Python control flow in a subclassed model's call()")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self!r} is symbolic and cannot become an array; call a model on data to get values")


@dataclass(eq=False)
class Node:
    """One call of ``layer`` on symbolic tensors.

    Attributes:
        layer: the layer called.
        args: the positional call arguments, with :class:`KerasTensor` leaves (``args[0]`` is the inputs).
        kwargs: the keyword call arguments (e.g. ``initial_state=[h, c]``), with KerasTensor leaves.
        outputs: what the call returned (a KerasTensor or a nest of them).
    """

    layer: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: Any

    @property
    def input_tensors(self) -> list[KerasTensor]:
        """Every KerasTensor among the call's arguments, in order (inputs first, then keyword arguments)."""
        return [t for t in flatten([list(self.args), self.kwargs]) if isinstance(t, KerasTensor)]

    @property
    def output_tensors(self) -> list[KerasTensor]:
        return [t for t in flatten(self.outputs) if isinstance(t, KerasTensor)]

    @property
    def parent_nodes(self) -> list[Node]:
        """The nodes that made this call's input tensors."""
        out: list[Node] = []
        for t in self.input_tensors:
            node = t.node
            if node is not None and all(node is not n for n in out):
                out.append(node)
        return out


@dataclass
class InputSpec:
    """What a layer accepts (Keras's ``InputSpec``), checked when it is called on symbolic tensors.

    Attributes:
        ndim: the exact rank, or None.
        min_ndim: the smallest rank, or None.
        axes: ``{axis: size}`` that must hold (e.g. ``{-1: 10}`` for a Dense layer built for 10 features).
    """

    ndim: int | None = None
    min_ndim: int | None = None
    axes: dict[int, int] = field(default_factory=dict)

    def problem(self, shape: Shape) -> str | None:
        """What is wrong with ``shape`` (as "expected ..., but received ..."), or None."""
        if self.ndim is not None and len(shape) != self.ndim:
            return f"expected ndim={self.ndim}, found ndim={len(shape)}. Full shape received: {shape}"
        if self.min_ndim is not None and len(shape) < self.min_ndim:
            return f"expected min_ndim={self.min_ndim}, found ndim={len(shape)}. Full shape received: {shape}"
        for axis, size in self.axes.items():
            if -len(shape) <= axis < len(shape) and shape[axis] is not None and shape[axis] != size:
                return (f"expected axis {axis} of input shape to have value {size}, but received input with "
                        f"shape {shape}")
        return None


def is_symbolic(*structures: Any) -> bool:
    """Whether any leaf of ``structures`` is a :class:`KerasTensor`."""
    return any(isinstance(leaf, KerasTensor) for s in structures for leaf in flatten(s))
