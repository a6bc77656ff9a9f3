"""Dropout: Keras's inverted dropout, active only in training."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.kernels.training_ops import dropout
from lstmtext.layers.base import Layer, register_layer


@register_layer
class Dropout(Layer):
    """Zeroes inputs with probability ``rate`` during training and scales the rest by ``1/(1-rate)``.

    Args:
        rate: drop probability in ``[0, 1)``.
        noise_shape: optional shape of the keep mask (``None`` axes follow the input), as Keras.
        seed: optional seed of this layer's own generator.
    """

    supports_masking = True

    def __init__(self, rate: float, noise_shape: list[int | None] | None = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
            raise ConfigError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = list(noise_shape) if noise_shape is not None else None
        self.seed = seed
        self._generator: torch.Generator | None = None

    def _gen(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(int(self.seed))
        return self._generator

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        if not training or self.rate == 0.0:
            return inputs
        if self.noise_shape is None:
            # One keep bit per element: the compiled counter-based kernel on CPU float32 (lstmtext.kernels).
            return dropout(inputs, self.rate, self._gen(inputs.device))
        shape = tuple(s if n is None else n for s, n in zip(inputs.shape, self.noise_shape))
        keep = torch.empty(shape, device=inputs.device, dtype=inputs.dtype)
        keep.bernoulli_(1.0 - self.rate, generator=self._gen(inputs.device))
        return inputs * keep / (1.0 - self.rate)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        return cfg
