"""TimeDistributed: one layer applied to every time step, as ``keras.layers.TimeDistributed``."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, Shape, deserialize, register_layer, serialize


@register_layer
class TimeDistributed(Layer):
    """Applies ``layer`` to each slice ``inputs[:, t]`` of a ``(batch, time, ...)`` input, with one set of
    weights shared by every step.

    Keras calls the inner layer once per step; here the time axis is folded into the batch
    (``(batch * time, ...)``) and the inner layer runs once, which gives the same numbers for every
    layer that treats batch rows independently (Dense, Activation, pooling, an inner LSTM over a
    ``(batch, time, steps, features)`` input). A mask is handed to the inner layer per step as Keras
    does: a ``(batch, time, steps)`` mask (from an ``Embedding(mask_zero=True)`` over a 3-D id input)
    becomes the ``(batch * time, steps)`` mask of the inner layer. The mask passes on unchanged to the
    next layer (and to the loss), as in Keras 3.15.

    Args:
        layer: the lstmtext layer to apply (it is built on ``(batch, *input_shape[2:])``); its weights
            are this layer's weights, in its Keras order.

    >>> from lstmtext.layers import Dense
    >>> TimeDistributed(Dense(4))(torch.randn(2, 5, 3)).shape
    torch.Size([2, 5, 4])
    """

    supports_masking = True

    def __init__(self, layer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            layer = deserialize(layer)
        if not isinstance(layer, Layer):
            raise ConfigError(f"TimeDistributed: layer must be an lstmtext layer, got {layer!r}")
        self.layer = layer

    @staticmethod
    def _child_shape(name: str, input_shape: Any) -> Shape:
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 3 or not all(
                d is None or isinstance(d, int) for d in input_shape):
            raise ConfigError(f"{name}: TimeDistributed needs an input of rank >= 3 (batch, time, ...), "
                              f"got shape {input_shape}")
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape: Shape) -> None:
        child = self._child_shape(self.name, input_shape)
        if not self.layer.built:
            self.layer.build(child)
            self.layer.built = True
        self.built = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        shape = tuple(inputs.shape)
        self._child_shape(self.name, shape)
        b, t = shape[0], shape[1]
        inner_mask = None
        if mask is not None:
            mask = torch.as_tensor(mask, device=inputs.device)
            if mask.dim() < 2 or tuple(mask.shape[:2]) != (b, t):
                raise ConfigError(f"{self.name}: the mask must start with the input's (batch, time) = {(b, t)}, "
                                  f"got mask shape {tuple(mask.shape)} for input shape {shape}")
            inner_mask = mask.reshape(b * t, *mask.shape[2:])
        y = self.layer(inputs.reshape(b * t, *shape[2:]), mask=inner_mask, training=training)
        if not isinstance(y, torch.Tensor):
            raise ConfigError(f"{self.name}: the wrapped layer {self.layer.name!r} must return one tensor, "
                              f"got {type(y).__name__}")
        return y.reshape(b, t, *y.shape[1:])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        child = self.layer.compute_output_shape(self._child_shape(self.name, input_shape))
        return (child[0], input_shape[1], *child[1:])

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["layer"] = serialize(self.layer)
        return cfg
