"""ReverseSequence: the time axis reversed (the classifier of a backward language model reads right to left)."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, Shape, register_layer


@register_layer
class ReverseSequence(Layer):
    """Reverses axis 1 of a ``(batch, steps, ...)`` input, and its mask with it.

    Not a Keras layer: it puts a classifier built on a backward language model (``lstmtext pretrain
    --backwards``) in front of its Embedding, so that ``predict``, ``evaluate``, the service and ONNX read
    each text right to left as the language model did. Padding moves to the other end (pre-padding becomes
    post-padding); the masked LSTM and the poolings after it give the same result for either side.

    >>> ReverseSequence()(torch.tensor([[0, 0, 5, 6, 7]])).tolist()
    [[7, 6, 5, 0, 0]]
    """

    supports_masking = True
    reorders_only = True
    """Any dtype passes unchanged: a Sequential model starting with it takes the input of the layer after it."""

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 2:
            raise ConfigError(f"{self.name}: expected inputs of rank >= 2 (batch, steps, ...), "
                              f"got shape {tuple(input_shape)}")
        self.built = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        return torch.flip(inputs, dims=[1])

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        return torch.flip(mask, dims=[1]) if mask is not None else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)
