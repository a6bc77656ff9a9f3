"""RepeatVector: ``(batch, features)`` -> ``(batch, n, features)``, as ``keras.layers.RepeatVector``."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, Shape, register_layer


@register_layer
class RepeatVector(Layer):
    """Repeats a 2-D input ``n`` times along a new time axis (an encoder's vector fed to a decoder LSTM).

    Args:
        n: the repetition factor, a positive integer.

    Returns:
        ``(batch, n, features)``; no mask (Keras's RepeatVector does not support masking).

    >>> RepeatVector(3)(torch.ones(2, 4)).shape
    torch.Size([2, 3, 4])
    """

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise ConfigError(f"RepeatVector: n must be a positive integer, got {n!r}")
        self.n = n

    def _check(self, shape: Shape) -> None:
        if len(shape) != 2:
            raise ConfigError(f"{self.name}: expected inputs of rank 2 (batch, features), got shape {tuple(shape)}")

    def build(self, input_shape: Shape) -> None:
        self._check(tuple(input_shape))
        self.built = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        self._check(tuple(inputs.shape))
        return inputs.unsqueeze(1).expand(inputs.shape[0], self.n, inputs.shape[1])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._check(tuple(input_shape))
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg
