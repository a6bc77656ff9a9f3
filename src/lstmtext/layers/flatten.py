"""Flatten: every axis after the batch axis folded into one, as ``keras.layers.Flatten``."""

from __future__ import annotations

import math
from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, Shape, register_layer


@register_layer
class Flatten(Layer):
    """Reshapes ``(batch, d1, d2, ...)`` to ``(batch, d1 * d2 * ...)``; a mask does not pass through.

    Args:
        data_format: only ``"channels_last"`` (Keras's default) is supported.

    >>> Flatten()(torch.ones(2, 3, 4)).shape
    torch.Size([2, 12])
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ConfigError(f"Flatten: data_format must be 'channels_last', got {data_format!r}")
        self.data_format = "channels_last"

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        return inputs.reshape(inputs.shape[0], -1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))  # type: ignore[arg-type]

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["data_format"] = self.data_format
        return cfg
