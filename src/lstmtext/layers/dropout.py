"""Dropout: Keras's inverted dropout, active only in training."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.kernels.training_ops import dropout
from lstmtext.layers.base import Layer, register_layer


def seeded_generator(layer: Any, device: torch.device) -> torch.Generator | None:
    """``layer``'s own generator on ``device``, seeded once from ``layer.seed`` (kept in ``layer._generator``);
    None (torch's global generator) when ``layer.seed`` is None."""
    if layer.seed is None:
        return None
    if layer._generator is None or layer._generator.device != device:
        layer._generator = torch.Generator(device=device)
        layer._generator.manual_seed(int(layer.seed))
    return layer._generator


def drop_with_noise_shape(inputs: torch.Tensor, rate: float, noise_shape: tuple[int, ...],
                          generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout with one keep bit per element of ``noise_shape`` (broadcast over ``inputs``)."""
    keep = torch.empty(noise_shape, device=inputs.device, dtype=inputs.dtype)
    keep.bernoulli_(1.0 - rate, generator=generator)
    return inputs * keep / (1.0 - rate)


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
        return seeded_generator(self, device)

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        if not training or self.rate == 0.0:
            return inputs
        if self.noise_shape is None:
            # One keep bit per element: the compiled counter-based kernel on CPU float32 (lstmtext.kernels).
            return dropout(inputs, self.rate, self._gen(inputs.device))
        shape = tuple(s if n is None else n for s, n in zip(inputs.shape, self.noise_shape))
        return drop_with_noise_shape(inputs, self.rate, shape, self._gen(inputs.device))

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        return cfg
