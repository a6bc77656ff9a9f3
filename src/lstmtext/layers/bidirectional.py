"""Bidirectional: run a recurrent layer forwards and backwards and merge, as ``keras.layers.Bidirectional``."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, Shape, deserialize, register_layer, serialize

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _copy_as(layer: Layer, prefix: str, **overrides: Any) -> Layer:
    spec = serialize(layer)
    name = spec["config"].get("name") or layer.name
    spec["config"]["name"] = f"{prefix}_{name.removeprefix(prefix + '_')}"
    spec["config"].update(overrides)
    return deserialize(spec)


@register_layer
class Bidirectional(Layer):
    """Bidirectional wrapper of a recurrent layer (an :class:`~lstmtext.layers.LSTM`).

    The forward copy reads the sequence as given, the backward copy reads it reversed (``go_backwards``);
    with ``return_sequences`` the backward outputs are flipped back into time order before merging, and
    masked steps output zeros in both (Keras forces ``zero_output_for_mask=return_sequences``). Both copies
    are freshly built from ``layer``'s config; they do not share its weights.

    Args:
        layer: the recurrent layer to copy, e.g. ``LSTM(64, return_sequences=True)``.
        merge_mode: ``"concat"`` (default), ``"sum"``, ``"mul"``, ``"ave"`` or None (return both).
        weights: optional initial weights, forward layer's then backward layer's, in Keras order.
        backward_layer: optional own backward layer; it must have the opposite ``go_backwards`` and the
            same ``return_sequences``, ``return_state`` and ``stateful``.

    Call: ``bi(inputs, mask=None, training=None, initial_state=None)``; ``initial_state`` is the forward
    states followed by the backward states (``[h_f, c_f, h_b, c_b]``).

    Returns:
        the merged output (``(B, 2u)`` for concat, ``(B, u)`` otherwise; with a time axis for
        ``return_sequences``), or ``[y_forward, y_backward]`` for ``merge_mode=None``; with
        ``return_state`` followed by the forward then the backward final states.

    >>> from lstmtext.layers import LSTM
    >>> Bidirectional(LSTM(8))(torch.randn(2, 5, 3)).shape
    torch.Size([2, 16])
    """

    supports_masking = True

    def __init__(self, layer: Any, merge_mode: str | None = "concat", weights: list[Any] | None = None,
                 backward_layer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            layer = deserialize(layer)
        if isinstance(backward_layer, dict):
            backward_layer = deserialize(backward_layer)
        if not isinstance(layer, Layer) or not hasattr(layer, "go_backwards"):
            raise ConfigError(f"Bidirectional: layer must be a recurrent lstmtext layer (e.g. LSTM), got {layer!r}")
        if backward_layer is not None and (not isinstance(backward_layer, Layer)
                                           or not hasattr(backward_layer, "go_backwards")):
            raise ConfigError(f"Bidirectional: backward_layer must be a recurrent lstmtext layer, "
                              f"got {backward_layer!r}")
        if merge_mode not in _MERGE_MODES:
            raise ConfigError(f"Bidirectional: merge_mode must be one of {list(_MERGE_MODES)}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        self.forward_layer = _copy_as(layer, "forward")
        if backward_layer is None:
            self.backward_layer = _copy_as(layer, "backward", go_backwards=not layer.go_backwards)
        else:
            self.backward_layer = backward_layer
        fwd, bwd = self.forward_layer, self.backward_layer
        if fwd.go_backwards == bwd.go_backwards:
            raise ConfigError(f"Bidirectional: the forward and backward layers need different go_backwards, "
                              f"got {fwd.go_backwards} for both")
        for attr in ("stateful", "return_sequences", "return_state", "time_major"):
            if getattr(fwd, attr) != getattr(bwd, attr):
                raise ConfigError(f"Bidirectional: forward and backward layers need the same {attr}, got "
                                  f"{getattr(fwd, attr)} and {getattr(bwd, attr)}")
        for sub in (fwd, bwd):
            sub.zero_output_for_mask = sub.return_sequences
        self.stateful = fwd.stateful
        self.return_sequences = fwd.return_sequences
        self.return_state = fwd.return_state
        self._initial_weights = weights

    def build(self, input_shape: Shape) -> None:
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub.build(input_shape)
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def reset_states(self, states: list[Any] | None = None) -> None:
        """Reset both directions' states (``states``: forward ``[h, c]`` then backward ``[h, c]``)."""
        if not self.stateful:
            raise ConfigError(f"{self.name}: reset_states() needs a stateful layer (stateful=True)")
        half = None if states is None else len(states) // 2
        self.forward_layer.reset_states(None if states is None else states[:half])
        self.backward_layer.reset_states(None if states is None else states[half:])

    reset_state = reset_states

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False,
             initial_state: Any = None, **kw: Any):
        if kw:
            raise ConfigError(f"{self.name}: unexpected call arguments {sorted(kw)}")
        fwd_state = bwd_state = None
        if initial_state is not None:
            if not isinstance(initial_state, (list, tuple)) or len(initial_state) % 2:
                raise ConfigError(f"{self.name}: initial_state must list the forward then the backward states, "
                                  f"an even number of tensors, got {initial_state!r}")
            half = len(initial_state) // 2
            fwd_state, bwd_state = list(initial_state[:half]), list(initial_state[half:])
        y = self.forward_layer(inputs, mask=mask, training=training, initial_state=fwd_state)
        y_rev = self.backward_layer(inputs, mask=mask, training=training, initial_state=bwd_state)
        states: list[torch.Tensor] = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(0 if self.forward_layer.time_major else 1)
        if self.merge_mode == "concat":
            out: Any = torch.cat([y, y_rev], dim=-1)
        elif self.merge_mode == "sum":
            out = y + y_rev
        elif self.merge_mode == "ave":
            out = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            out = y * y_rev
        else:
            out = [y, y_rev]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> Any:
        out: Any = mask if self.return_sequences else None
        if self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + [None] * 4
        return out

    def compute_output_shape(self, input_shape: Shape) -> Any:
        shape = self.forward_layer.compute_output_shape(input_shape)
        state_shapes: list[Any] = []
        if self.return_state:
            shape, state_shapes = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            out: Any = (*shape[:-1], shape[-1] * 2)
        elif self.merge_mode is None:
            out = [shape, shape]
        else:
            out = shape
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + state_shapes * 2
        return out

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(merge_mode=self.merge_mode, layer=serialize(self.forward_layer),
                   backward_layer=serialize(self.backward_layer))
        return cfg
