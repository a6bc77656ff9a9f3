"""``Input`` / ``InputLayer``: where a model's data enters its graph (Keras's ``keras.Input``).

>>> inputs = Input(shape=(None,), dtype="int32")          # doctest: +SKIP
>>> x = Embedding(20000, 128)(inputs)                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, register_layer
from lstmtext.layers.symbolic import KerasTensor, Node, Shape

_DTYPES = ("float32", "float64", "float16", "bfloat16", "int32", "int64", "int16", "int8", "uint8", "bool", "string")


@register_layer
class InputLayer(Layer):
    """The layer behind :func:`Input`: declares one input's shape and dtype and makes its symbolic tensor.

    Args:
        shape: shape of one sample, without the batch axis, e.g. ``(300,)``; ``None`` for a size the data
            will tell (``(None,)``: sequences of any length).
        batch_size: optional fixed batch size.
        dtype: ``"int32"``/``"int64"`` for token ids, ``"float32"`` for features, ``"string"`` for raw text
            (for a first layer that takes strings, such as TextVectorization).
        batch_shape: full shape including the batch axis (instead of ``shape``/``batch_size``).
        name: the layer's (and its tensor's) name.
    """

    def __init__(self, shape: Sequence[int | None] | int | None = None, batch_size: int | None = None,
                 dtype: str | None = None, batch_shape: Sequence[int | None] | None = None,
                 name: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("sparse", None), kwargs.pop("ragged", None), kwargs.pop("optional", None)
        super().__init__(name=name, **kwargs)
        if batch_shape is None:
            if shape is None:
                raise ConfigError("Input: give shape=(...) (without the batch axis) or batch_shape=(...)")
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size, *tuple(shape))
        batch_shape = tuple(batch_shape)
        for d in batch_shape[1:]:
            if d is not None and (not isinstance(d, int) or isinstance(d, bool) or d <= 0):
                raise ConfigError(f"Input: shape dimensions must be positive integers or None, got {batch_shape[1:]}")
        dtype = dtype or "float32"
        if dtype in ("str", "object"):
            dtype = "string"
        if dtype not in _DTYPES:
            raise ConfigError(f"Input: dtype must be one of {list(_DTYPES)}, got {dtype!r}")
        self.batch_shape: Shape = batch_shape
        self.input_dtype = dtype
        self.built = True
        tensor = KerasTensor(batch_shape, dtype, name=self.name, history=(self, 0, 0))
        self._inbound_nodes.append(Node(self, (), {}, tensor))

    @property
    def tensor(self) -> KerasTensor:
        """The symbolic tensor this input stands for."""
        return self._inbound_nodes[0].outputs

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        return inputs

    def get_config(self) -> dict[str, Any]:
        return {"batch_shape": list(self.batch_shape), "dtype": self.input_dtype, "name": self.name}


def Input(shape: Sequence[int | None] | int | None = None, batch_size: int | None = None, dtype: str | None = None,
          name: str | None = None, batch_shape: Sequence[int | None] | None = None) -> KerasTensor:
    """A symbolic input, as ``keras.Input``: call layers on it, then ``Model(inputs, outputs)``.

    It can also open a Sequential model: ``Sequential([Input((300,), dtype="int32"), Embedding(...)])``.

    Args:
        shape: shape of one sample, without the batch axis (``(None,)`` for sequences of any length).
        batch_size: optional fixed batch size.
        dtype: ``"int32"``/``"int64"`` for token ids, ``"float32"`` (default) for features, ``"string"``.
        name: the input's name (the key of this input when ``fit``/``predict`` get a dict).
        batch_shape: full shape including the batch axis (instead of ``shape``/``batch_size``).

    Returns:
        A :class:`~lstmtext.layers.symbolic.KerasTensor`.

    >>> inputs = Input(shape=(None,), dtype="int32")  # doctest: +SKIP
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name).tensor
