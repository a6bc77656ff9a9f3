"""Activation: a Keras activation applied as a layer, as ``keras.layers.Activation``."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.layers import activations
from lstmtext.layers.base import Layer, register_layer


@register_layer
class Activation(Layer):
    """Applies an activation function; the mask passes through unchanged.

    Args:
        activation: a Keras activation name (``"relu"``, ``"softmax"`` ...) or a callable (a callable
            without a Keras name cannot be saved in a config).

    >>> Activation("relu")(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """

    supports_masking = True

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.built = True  # no weights (Keras builds it at construction)

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        return self.activation(inputs.to(self.torch_dtype) if inputs.is_floating_point() else inputs)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["activation"] = activations.serialize(self.activation)
        return cfg
