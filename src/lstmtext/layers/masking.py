"""Masking: skip timesteps whose features all equal a padding value, as ``keras.layers.Masking``."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, register_layer


@register_layer
class Masking(Layer):
    """Marks a timestep as padding when every feature equals ``mask_value``, and zeroes it.

    The mask (``(B, T)`` bool, True for a real step) flows to the next layers, e.g. an :class:`LSTM`,
    which then carries its state over the padded steps.

    Args:
        mask_value: the padding value (default 0.0).

    Returns:
        the inputs, with masked steps set to 0; ``compute_mask`` gives ``any(inputs != mask_value, -1)``.

    >>> x = torch.tensor([[[0.0, 0.0], [1.0, 2.0]]])
    >>> Masking().compute_mask(x)
    tensor([[False,  True]])
    """

    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(mask_value, (int, float)) or isinstance(mask_value, bool):
            raise ConfigError(f"Masking: mask_value must be a number, got {mask_value!r}")
        self.mask_value = float(mask_value)

    def _keep(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.ndim < 2:
            raise ConfigError(f"{self.name}: expected inputs of shape (batch, timesteps, ...), "
                              f"got {tuple(inputs.shape)}")
        return torch.any(inputs != self.mask_value, dim=-1, keepdim=True)

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        return torch.where(self._keep(inputs), inputs, torch.zeros((), dtype=inputs.dtype, device=inputs.device))

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        return self._keep(torch.as_tensor(inputs)).squeeze(-1)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg
