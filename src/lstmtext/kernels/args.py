"""``LSTMCall``: the one parameter object of the LSTM recurrence paths (compiled, cuDNN, reference).

Every path takes the same nine things (inputs, three weights, two initial states, the step mask, the
recurrent dropout multipliers and ``zero_output_for_mask``); the public functions keep Keras's flat
signature and build one :class:`LSTMCall`, checked once, which the path functions take instead of repeating
the list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from lstmtext.errors import ConfigError


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


@dataclass(frozen=True)
class LSTMCall:
    """One Keras LSTM over a batch-major sequence: what every path of ``lstm_sequence`` takes.

    Attributes:
        x: ``(B, T, F)`` inputs, input dropout already applied.
        kernel: ``(F, 4u)`` Keras kernel (gates i, f, c, o).
        recurrent_kernel: ``(u, 4u)`` Keras recurrent kernel.
        bias: ``(4u,)`` or ``None``.
        h0, c0: ``(B, u)`` initial states.
        mask: ``(B, T)`` bool, True where the step is real, or ``None``.
        recurrent_dropout_mask: multiplier of ``h_{t-1}`` before the recurrent product, ``(B, u)`` shared by
            the gates or ``(4, B, u)`` one per gate, or ``None``.
        zero_output_for_mask: masked steps output zeros instead of repeating the previous output.

    >>> call = LSTMCall(torch.zeros(2, 3, 4), torch.zeros(4, 20), torch.zeros(5, 20), None,
    ...                 torch.zeros(2, 5), torch.zeros(2, 5)).checked()
    >>> call.units, call.batch, call.steps
    (5, 2, 3)
    """

    x: torch.Tensor
    kernel: torch.Tensor
    recurrent_kernel: torch.Tensor
    bias: torch.Tensor | None
    h0: torch.Tensor
    c0: torch.Tensor
    mask: torch.Tensor | None = None
    recurrent_dropout_mask: torch.Tensor | None = None
    zero_output_for_mask: bool = False

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    @property
    def steps(self) -> int:
        return self.x.shape[1]

    def weights_and_states(self) -> list[torch.Tensor]:
        """x, the weights (bias if any) and the initial states: the tensors whose dtype and device matter."""
        return [self.x, self.kernel, self.recurrent_kernel, self.h0, self.c0] + (
            [self.bias] if self.bias is not None else [])

    def checked(self) -> LSTMCall:
        """This call with every shape checked and the mask as bool.

        Raises:
            ConfigError: a tensor has the wrong shape (the message names it, its shape and the one expected).
        """
        x, rk = self.x, self.recurrent_kernel
        if x.dim() != 3:
            raise ConfigError(f"lstm_sequence: x must be 3-D (batch, timesteps, features), got shape {_shape(x)}")
        batch, steps, features = x.shape
        if rk.dim() != 2 or rk.shape[1] != 4 * rk.shape[0]:
            raise ConfigError(f"lstm_sequence: recurrent_kernel must have shape (units, 4*units), got {_shape(rk)}")
        units = rk.shape[0]
        if _shape(self.kernel) != (features, 4 * units):
            raise ConfigError(
                f"lstm_sequence: kernel must have shape {(features, 4 * units)}, got {_shape(self.kernel)}")
        if self.bias is not None and _shape(self.bias) != (4 * units,):
            raise ConfigError(f"lstm_sequence: bias must have shape {(4 * units,)}, got {_shape(self.bias)}")
        for name, s in (("h0", self.h0), ("c0", self.c0)):
            if _shape(s) != (batch, units):
                raise ConfigError(f"lstm_sequence: {name} must have shape {(batch, units)}, got {_shape(s)}")
        if self.mask is not None and _shape(self.mask) != (batch, steps):
            raise ConfigError(f"lstm_sequence: mask must have shape {(batch, steps)}, got {_shape(self.mask)}")
        rd = self.recurrent_dropout_mask
        if rd is not None and _shape(rd) not in ((batch, units), (4, batch, units)):
            raise ConfigError(
                "lstm_sequence: recurrent_dropout_mask must have shape "
                f"{(batch, units)} (shared by the gates) or {(4, batch, units)} (one per gate i, f, c, o), "
                f"got {_shape(rd)}"
            )
        if self.mask is not None and self.mask.dtype != torch.bool:
            return replace(self, mask=self.mask.to(torch.bool))
        return self

    def compiled_dropout_mask(self) -> torch.Tensor | None:
        """The recurrent dropout multipliers as the compiled kernel reads them (:func:`compiled_dropout_mask`)."""
        return compiled_dropout_mask(self.recurrent_dropout_mask)


def compiled_dropout_mask(rd: torch.Tensor | None) -> torch.Tensor | None:
    """Recurrent dropout multipliers ``(B, u)`` or ``(4, B, u)`` as the compiled kernel reads them: float32
    ``(B, u)`` or ``(B, 4, u)``, contiguous; ``None`` for none."""
    if rd is None:
        return None
    rd = rd.to(torch.float32)
    return rd.contiguous() if rd.dim() == 2 else rd.transpose(0, 1).contiguous()
