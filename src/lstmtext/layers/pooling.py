"""Global pooling over the time axis, as ``keras.layers.GlobalAveragePooling1D`` / ``GlobalMaxPooling1D``."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, Shape, register_layer


class _GlobalPooling1D(Layer):
    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ConfigError(
                f"{type(self).__name__}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
            )
        self.data_format = data_format or "channels_last"
        self.keepdims = bool(keepdims)

    @property
    def _steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def _check_rank(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != 3:
            raise ConfigError(
                f"{self.name}: expected inputs of rank 3 (batch, steps, features), got shape {tuple(inputs.shape)}"
            )
        # Keras casts float inputs to the layer's dtype (float64 NumPy arrays give float32 outputs).
        return inputs.to(self.torch_dtype) if inputs.is_floating_point() else inputs

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if self.data_format == "channels_last":
            return (input_shape[0], 1, input_shape[-1]) if self.keepdims else (input_shape[0], input_shape[-1])
        return (input_shape[0], input_shape[1], 1) if self.keepdims else (input_shape[0], input_shape[1])

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(data_format=self.data_format, keepdims=self.keepdims)
        return cfg


@register_layer
class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over the steps axis; with a mask, the mean over the real (unmasked) steps only, like Keras.

    Args:
        data_format: ``"channels_last"`` (inputs ``(batch, steps, features)``, default) or ``"channels_first"``.
        keepdims: keep the steps axis with length 1.

    Returns:
        ``(batch, features)`` (``(batch, 1, features)`` with ``keepdims``).

    >>> GlobalAveragePooling1D()(torch.ones(2, 5, 3)).shape
    torch.Size([2, 3])
    """

    supports_masking = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        inputs = self._check_rank(inputs)
        axis = self._steps_axis
        if mask is None:
            return inputs.mean(dim=axis, keepdim=self.keepdims)
        # Keras casts the mask to bool: 0/1 int or float masks work too.
        mask = torch.as_tensor(mask, device=inputs.device).bool()
        if tuple(mask.shape) != (inputs.shape[0], inputs.shape[axis]):
            raise ConfigError(f"{self.name}: mask of shape {tuple(mask.shape)} does not match inputs of shape "
                              f"{tuple(inputs.shape)}; expected {(inputs.shape[0], inputs.shape[axis])}")
        m = mask.unsqueeze(2 if axis == 1 else 1)  # (B, T, 1) or (B, 1, T)
        total = torch.where(m, inputs, torch.zeros((), dtype=inputs.dtype, device=inputs.device))
        # Keras divides by the count of real steps; an all-masked row gives NaN there too.
        return total.sum(dim=axis, keepdim=self.keepdims) / m.to(inputs.dtype).sum(dim=axis, keepdim=self.keepdims)


@register_layer
class GlobalMaxPooling1D(_GlobalPooling1D):
    """Maximum over the steps axis. Like Keras 3, a mask is ignored (padded steps take part).

    Args:
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        keepdims: keep the steps axis with length 1.

    >>> GlobalMaxPooling1D()(torch.ones(2, 5, 3)).shape
    torch.Size([2, 3])
    """

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        inputs = self._check_rank(inputs)
        return inputs.amax(dim=self._steps_axis, keepdim=self.keepdims)
