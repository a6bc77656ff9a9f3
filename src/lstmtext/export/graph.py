"""A small ONNX graph builder and the Keras activations written as ONNX operators.

The exporter writes graphs by hand with :mod:`onnx.helper` rather than tracing PyTorch: the layers'
fused kernels are not traceable, and only a hand-written graph can use ONNX's native ``LSTM`` operator
with Keras's masking rules (see :mod:`lstmtext.export.lstm`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from lstmtext.errors import ExportError

#: Oldest opset the exporter writes: ``Unsqueeze``/``Squeeze``/``ReduceSum`` take their axes as inputs
#: from 13 on, and ``Softmax(axis=-1)`` means the last axis only from 13 on (Keras's softmax).
MIN_OPSET = 13
#: Default opset: understood by every onnxruntime since 1.11 and by most other runtimes.
DEFAULT_OPSET = 17


class GraphBuilder:
    """Collects nodes and initializers under unique names.

    Args:
        opset: the default-domain opset the graph targets (some operators changed signature across opsets).
    """

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._used: Counter[str] = Counter()
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}
        self._issued: set[str] = set()

    def name(self, base: str) -> str:
        """A fresh tensor/node name starting with ``base``."""
        while True:  # "dot" twice gives "dot_1", which a layer may also be called: skip names already given
            n = self._used[base]
            self._used[base] += 1
            name = base if n == 0 else f"{base}_{n}"
            if name not in self._issued:
                self._issued.add(name)
                return name

    def const(self, value: Any, base: str = "const", dtype: Any = None) -> str:
        """An initializer holding ``value`` (small constants are shared by value)."""
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        key = (str(arr.dtype), arr.tobytes(), arr.shape)
        if arr.size <= 16 and key in self._consts:
            return self._consts[key]
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.array(arr, order="C"), name))
        if arr.size <= 16:
            self._consts[key] = name
        return name

    def op(self, op_type: str, inputs: Sequence[str], *, outputs: int = 1, base: str | None = None,
           **attrs: Any) -> Any:
        """Append one node; returns its output name (or a list of names when ``outputs > 1``)."""
        stem = base or op_type.lower()
        outs = [self.name(stem if outputs == 1 else f"{stem}_out{i}") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.name(f"{stem}_node"), **attrs))
        return outs[0] if outputs == 1 else outs

    def used_initializers(self) -> list[TensorProto]:
        """The initializers some node reads (shared constants may end up unused)."""
        read = {name for node in self.nodes for name in node.input}
        return [t for t in self.initializers if t.name in read]

    # -- helpers whose signature depends on the opset ----------------------------------------------------
    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Unsqueeze", [x, self.const(np.array(axes, np.int64))])

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Squeeze", [x, self.const(np.array(axes, np.int64))])

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool) -> str:
        """``ReduceSum``/``ReduceMax``/``ReduceMean``: axes became an input in opset 13 (Sum) or 18 (others)."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.const(np.array(axes, np.int64))], keepdims=int(keepdims))
        return self.op(op_type, [x], axes=list(axes), keepdims=int(keepdims))

    def flip(self, x: str, axis: int) -> str:
        """Reverse ``x`` along ``axis`` (``Slice`` with step -1)."""
        big = np.iinfo(np.int64).max
        return self.op("Slice", [x, self.const(np.array([-1], np.int64)), self.const(np.array([-big], np.int64)),
                                 self.const(np.array([axis], np.int64)), self.const(np.array([-1], np.int64))])

    def dim(self, x: str, axis: int) -> str:
        """The size of ``x``'s axis ``axis`` as a 1-element int64 tensor."""
        if self.opset >= 15:
            return self.op("Shape", [x], start=axis, end=axis + 1)
        return self.op("Gather", [self.op("Shape", [x]), self.const(np.array([axis], np.int64))], axis=0)


def _scaled(g: GraphBuilder, x: str, scale: float) -> str:
    return g.op("Mul", [x, g.const(np.float32(scale))])


# Each takes the builder and the input name and returns the output name; the formulas are those of
# lstmtext.layers.activations (Keras 3's), written with ONNX operators.
_ACTIVATIONS: dict[str, Callable[[GraphBuilder, str], str]] = {
    "linear": lambda g, x: x,
    "tanh": lambda g, x: g.op("Tanh", [x]),
    "sigmoid": lambda g, x: g.op("Sigmoid", [x]),
    "relu": lambda g, x: g.op("Relu", [x]),
    "softmax": lambda g, x: g.op("Softmax", [x], axis=-1),
    "log_softmax": lambda g, x: g.op("LogSoftmax", [x], axis=-1),
    "elu": lambda g, x: g.op("Elu", [x], alpha=1.0),
    "selu": lambda g, x: g.op("Selu", [x]),
    "celu": lambda g, x: g.op("Celu", [x], alpha=1.0),
    "softplus": lambda g, x: g.op("Softplus", [x]),
    "softsign": lambda g, x: g.op("Softsign", [x]),
    "hard_sigmoid": lambda g, x: g.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5),
    "silu": lambda g, x: g.op("Mul", [x, g.op("Sigmoid", [x])]),
    "exponential": lambda g, x: g.op("Exp", [x]),
    "leaky_relu": lambda g, x: g.op("LeakyRelu", [x], alpha=0.2),
    "relu6": lambda g, x: g.op("Clip", [x, g.const(np.float32(0.0)), g.const(np.float32(6.0))]),
    "hard_tanh": lambda g, x: g.op("Clip", [x, g.const(np.float32(-1.0)), g.const(np.float32(1.0))]),
    "sparse_sigmoid": lambda g, x: g.op("Clip", [_scaled(g, g.op("Add", [x, g.const(np.float32(1.0))]), 0.5),
                                                 g.const(np.float32(0.0)), g.const(np.float32(1.0))]),
    "hard_silu": lambda g, x: g.op("Mul", [x, g.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)]),
    "mish": lambda g, x: g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])]),
    "log_sigmoid": lambda g, x: g.op("Neg", [g.op("Softplus", [g.op("Neg", [x])])]),
    "tanh_shrink": lambda g, x: g.op("Sub", [x, g.op("Tanh", [x])]),
    "soft_shrink": lambda g, x: g.op("Shrink", [x], lambd=0.5, bias=0.5),
    "hard_shrink": lambda g, x: g.op("Shrink", [x], lambd=0.5, bias=0.0),
    # torch's exact (erf) GELU, Keras 3's default approximate=False
    "gelu": lambda g, x: g.op("Mul", [_scaled(g, x, 0.5), g.op(
        "Add", [g.const(np.float32(1.0)), g.op("Erf", [_scaled(g, x, 1.0 / np.sqrt(2.0))])])]),
    "squareplus": lambda g, x: _scaled(g, g.op("Add", [x, g.op("Sqrt", [g.op(
        "Add", [g.op("Mul", [x, x]), g.const(np.float32(4.0))])])]), 0.5),
}


def supported_activations() -> list[str]:
    """Keras activation names the exporter writes as ONNX operators."""
    return sorted(_ACTIVATIONS)


def activation_name(fn: Any) -> str | None:
    """The Keras name of an activation function, or None for a callable without one."""
    from lstmtext.layers import activations

    try:
        return activations.serialize(fn)
    except Exception:  # a user callable: it has no Keras name, so no ONNX equivalent is known
        return None


def apply_activation(g: GraphBuilder, x: str, fn: Any, layer: str) -> str:
    """Append Keras activation ``fn`` to ``x``; raises :class:`ExportError` naming ``layer`` when impossible."""
    name = activation_name(fn)
    if name is None:
        raise ExportError(f"layer {layer!r}: activation {fn!r} is a custom callable, which has no ONNX "
                          f"equivalent; use one of Keras's named activations ({', '.join(supported_activations())})")
    lower = _ACTIVATIONS.get(name)
    if lower is None:
        raise ExportError(f"layer {layer!r}: activation {name!r} cannot be exported to ONNX yet; supported: "
                          f"{', '.join(supported_activations())}")
    return lower(g, x)


#: Keras activation name -> (ONNX LSTM activation, alpha, beta), for the LSTM operator's ``activations``.
LSTM_ACTIVATIONS: dict[str, tuple[str, float | None, float | None]] = {
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "elu": ("Elu", 1.0, None),
}


def tensor_type(dtype: np.dtype) -> int:
    """The ONNX element type of a numpy dtype."""
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
