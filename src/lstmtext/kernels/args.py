"""``LSTMCall``: the one parameter object of every LSTM sequence entry point (fused, cuDNN, reference).

Every path takes the same things (inputs, three weights, two initial states, the step mask, the recurrent
dropout multipliers and ``zero_output_for_mask``, as Keras's backend ``lstm`` does). They are written once,
here, and checked once, when the object is made; ``lstm_sequence(LSTMCall(...))``,
``lstm_sequence_fused``, ``lstm_sequence_reference``, ``lstm_sequence_packed`` and the layer's
``lstm_fused`` all take one :class:`LSTMCall` instead of repeating the list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from lstmtext.errors import ConfigError


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


@dataclass(frozen=True, slots=True)
class LSTMCall:
    """One Keras LSTM (tanh / sigmoid) over a batch-major sequence: what every LSTM sequence path takes.

    The shapes are checked when the object is made, so a path never sees an inconsistent call.

    Attributes:
        x: ``(B, T, F)`` inputs, input dropout already applied; or, with ``ids``, the ``(V, F)`` embedding
            table the inputs are looked up in (step ``(b, t)``'s input is ``x[ids[b, t]]``).
        kernel: ``(F, 4u)`` Keras kernel (gates i, f, c, o).
        recurrent_kernel: ``(u, 4u)`` Keras recurrent kernel.
        bias: ``(4u,)`` or ``None``.
        h0, c0: ``(B, u)`` initial states.
        mask: ``(B, T)``, True where the step is real, or ``None`` (stored as bool).
        recurrent_dropout_mask: multiplier of ``h_{t-1}`` before the recurrent product (already scaled by
            ``1 / (1 - rate)``; the carried h itself is not dropped): ``(B, u)`` shared by the four gates,
            or ``(4, B, u)`` one mask per gate as Keras's ``LSTMCell`` draws it; ``None`` for none.
        zero_output_for_mask: masked steps output zeros instead of repeating the previous output.
        ids: ``(B, T)`` integer token ids into the table ``x`` (an Embedding followed by the LSTM, whose
            input projection the compiled kernel then takes once per vocabulary row), or ``None``.

    Raises:
        ConfigError: a tensor has the wrong shape (the message names it, its shape and the one expected).

    >>> call = LSTMCall(torch.zeros(2, 3, 4), torch.zeros(4, 20), torch.zeros(5, 20), None,
    ...                 torch.zeros(2, 5), torch.zeros(2, 5))
    >>> call.units, call.batch, call.steps
    (5, 2, 3)
    >>> LSTMCall(torch.zeros(2, 3, 4), torch.zeros(3, 20), torch.zeros(5, 20), None,
    ...          torch.zeros(2, 5), torch.zeros(2, 5))
    Traceback (most recent call last):
    ...
    lstmtext.errors.ConfigError: LSTMCall: kernel must have shape (4, 20), got (3, 20)
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
    ids: torch.Tensor | None = None

    def __post_init__(self) -> None:
        x, rk, ids = self.x, self.recurrent_kernel, self.ids
        if ids is None:
            if x.dim() != 3:
                raise ConfigError(f"LSTMCall: x must be 3-D (batch, timesteps, features), got shape {_shape(x)}")
            batch, steps, features = x.shape
        else:
            if x.dim() != 2:
                raise ConfigError(f"LSTMCall: with ids, x must be the 2-D embedding table (vocabulary, features), "
                                  f"got shape {_shape(x)}")
            if ids.dim() != 2 or ids.is_floating_point() or ids.is_complex():
                raise ConfigError(f"LSTMCall: ids must be 2-D (batch, timesteps) integer token ids, got shape "
                                  f"{_shape(ids)} of {ids.dtype}")
            (batch, steps), features = ids.shape, x.shape[1]
        # torch.Size is a tuple: shapes compare with tuples directly (tuple() only for the messages).
        if rk.dim() != 2 or rk.shape[1] != 4 * rk.shape[0]:
            raise ConfigError(f"LSTMCall: recurrent_kernel must have shape (units, 4*units), got {_shape(rk)}")
        units = rk.shape[0]
        if self.kernel.shape != (features, 4 * units):
            raise ConfigError(f"LSTMCall: kernel must have shape {(features, 4 * units)}, got {_shape(self.kernel)}")
        if self.bias is not None and self.bias.shape != (4 * units,):
            raise ConfigError(f"LSTMCall: bias must have shape {(4 * units,)}, got {_shape(self.bias)}")
        for name, s in (("h0", self.h0), ("c0", self.c0)):
            if s.shape != (batch, units):
                raise ConfigError(f"LSTMCall: {name} must have shape {(batch, units)}, got {_shape(s)}")
        if self.mask is not None:
            if self.mask.shape != (batch, steps):
                raise ConfigError(f"LSTMCall: mask must have shape {(batch, steps)}, got {_shape(self.mask)}")
            if self.mask.dtype != torch.bool:
                object.__setattr__(self, "mask", self.mask.to(torch.bool))
        rd = self.recurrent_dropout_mask
        if rd is not None and rd.shape != (batch, units) and rd.shape != (4, batch, units):
            raise ConfigError(
                "LSTMCall: recurrent_dropout_mask must have shape "
                f"{(batch, units)} (shared by the gates) or {(4, batch, units)} (one per gate i, f, c, o), "
                f"got {_shape(rd)}"
            )

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]

    @property
    def batch(self) -> int:
        return self.x.shape[0] if self.ids is None else self.ids.shape[0]

    @property
    def steps(self) -> int:
        return self.x.shape[1] if self.ids is None else self.ids.shape[1]

    def weights_and_states(self) -> list[torch.Tensor]:
        """x (or the table), the weights (bias if any) and the initial states: the tensors whose dtype and
        device matter."""
        return [self.x, self.kernel, self.recurrent_kernel, self.h0, self.c0] + (
            [self.bias] if self.bias is not None else [])

    def embedded(self) -> LSTMCall:
        """This call on the looked-up inputs ``x[ids]`` ``(B, T, F)`` (itself when it has no ``ids``)."""
        if self.ids is None:
            return self
        return replace(self, x=F.embedding(self.ids, self.x), ids=None)

    def compiled_dropout_mask(self) -> torch.Tensor | None:
        """The recurrent dropout multipliers as the compiled kernel reads them: float32 ``(B, u)`` or
        ``(B, 4, u)``, contiguous; ``None`` for none."""
        rd = self.recurrent_dropout_mask
        if rd is None:
            return None
        rd = rd.to(torch.float32)
        return rd.contiguous() if rd.dim() == 2 else rd.transpose(0, 1).contiguous()
