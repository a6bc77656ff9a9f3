"""ConcatPooling: ULMFiT's pooled classifier input, the last state with the max and mean over the real steps."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, Shape, register_layer


@register_layer
class ConcatPooling(Layer):
    """``[last, max, mean]`` over the time axis of a sequence, each over the unmasked steps only.

    fastai's ``masked_concat_pool`` (ULMFiT, Howard & Ruder 2018, section 3.3): ``last`` is the output at
    each row's last real step, ``max`` and ``mean`` are taken over its real steps. Without a mask every
    step is real. A row with no real step gives zeros.

    Input ``(batch, steps, features)`` (an ``LSTM(return_sequences=True)`` output and its mask);
    output ``(batch, 3 * features)``.

    >>> ConcatPooling()(torch.ones(2, 5, 3)).shape
    torch.Size([2, 9])
    """

    supports_masking = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        if inputs.dim() != 3:
            raise ConfigError(f"{self.name}: expected inputs of rank 3 (batch, steps, features), "
                              f"got shape {tuple(inputs.shape)}")
        batch, steps, _ = inputs.shape
        if mask is None:
            return torch.cat([inputs[:, -1], inputs.amax(dim=1), inputs.mean(dim=1)], dim=1)
        m = mask.to(torch.bool)
        count = m.sum(dim=1)  # (B,)
        # Index of the last real step: the largest t with m[t], via argmax of t * m (0 when none).
        steps_idx = torch.arange(steps, device=inputs.device)
        last_idx = (steps_idx * m).argmax(dim=1)
        last = inputs[torch.arange(batch, device=inputs.device), last_idx]
        m3 = m.unsqueeze(-1)
        neg = torch.finfo(inputs.dtype).min
        mx = torch.where(m3, inputs, torch.full((), neg, dtype=inputs.dtype, device=inputs.device)).amax(dim=1)
        mean = torch.where(m3, inputs, torch.zeros((), dtype=inputs.dtype, device=inputs.device)).sum(dim=1)
        mean = mean / count.clamp(min=1).unsqueeze(1).to(inputs.dtype)
        out = torch.cat([last, mx, mean], dim=1)
        return torch.where((count > 0).unsqueeze(1), out, torch.zeros((), dtype=out.dtype, device=out.device))

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ConfigError(f"{self.name}: expected a rank-3 input shape, got {tuple(input_shape)}")
        return (input_shape[0], None if input_shape[-1] is None else 3 * input_shape[-1])
