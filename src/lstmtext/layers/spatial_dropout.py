"""SpatialDropout1D: dropout of whole feature channels, as ``keras.layers.SpatialDropout1D``."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Shape, register_layer
from lstmtext.layers.dropout import Dropout, drop_with_noise_shape


@register_layer
class SpatialDropout1D(Dropout):
    """Drops entire channels of a ``(batch, steps, channels)`` input during training.

    One keep bit per sample and channel (noise shape ``(batch, 1, channels)``), shared by every step, the
    kept values scaled by ``1/(1-rate)``: with embeddings, a dropped channel is gone from the whole
    sequence. The identity at inference; the mask passes through.

    Args:
        rate: drop probability in ``[0, 1)``.
        seed: optional seed of this layer's own generator.

    >>> SpatialDropout1D(0.5)(torch.ones(2, 5, 3), training=True).shape
    torch.Size([2, 5, 3])
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        kwargs.pop("noise_shape", None)  # fixed by the layer: (batch, 1, channels)
        super().__init__(rate, seed=seed, **kwargs)

    def _check(self, shape: Shape) -> None:
        if len(shape) != 3:
            raise ConfigError(f"{self.name}: expected inputs of rank 3 (batch, steps, channels), "
                              f"got shape {tuple(shape)}")

    def build(self, input_shape: Shape) -> None:
        self._check(tuple(input_shape))
        self.built = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        self._check(tuple(inputs.shape))
        if not training or self.rate == 0.0:
            return inputs
        return drop_with_noise_shape(inputs, self.rate, (inputs.shape[0], 1, inputs.shape[2]),
                                     self._gen(inputs.device))

    def get_config(self) -> dict[str, Any]:
        # Keras's SpatialDropout1D takes only rate, seed, name and dtype: no noise_shape, no trainable.
        cfg = super().get_config()
        del cfg["noise_shape"], cfg["trainable"]
        return cfg
