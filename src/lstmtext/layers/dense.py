"""Dense: ``activation(x @ kernel + bias)`` on the last axis, Keras's weights and defaults."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers import activations, initializers
from lstmtext.layers.base import Layer, Shape, register_layer
from lstmtext.layers.weight_options import resolve_constraint, resolve_regularizer, serialize_option


@register_layer
class Dense(Layer):
    """Densely connected layer, as ``keras.layers.Dense``; ``kernel`` is ``(input_dim, units)``.

    Args:
        units: output size.
        activation: Keras activation name or callable (default linear).
        use_bias: add a ``bias`` of shape ``(units,)``.
        kernel_initializer, bias_initializer: Keras initializers (glorot_uniform, zeros).
        kernel_regularizer, bias_regularizer, activity_regularizer: optional regularizers.
        kernel_constraint, bias_constraint: optional constraints.

    >>> Dense(1, activation="sigmoid")(torch.ones(4, 10)).shape
    torch.Size([4, 1])
    """

    supports_masking = True

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ConfigError(f"Dense: units must be a positive integer, got {units!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = resolve_regularizer(kernel_regularizer)
        self.bias_regularizer = resolve_regularizer(bias_regularizer)
        self.activity_regularizer = resolve_regularizer(activity_regularizer)
        self.kernel_constraint = resolve_constraint(kernel_constraint)
        self.bias_constraint = resolve_constraint(bias_constraint)

    def build(self, input_shape: Shape) -> None:
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ConfigError(f"{self.name}: the last axis of the input must be known, got shape {input_shape}")
        self.add_weight("kernel", (in_dim, self.units), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.built = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        if inputs.shape[-1] != self.kernel.shape[0]:
            raise ConfigError(
                f"{self.name}: expected inputs with last axis {self.kernel.shape[0]}, got shape {tuple(inputs.shape)}"
            )
        y = torch.matmul(inputs.to(self.kernel.dtype), self.kernel)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape[:-1]), self.units)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=serialize_option(self.kernel_regularizer),
            bias_regularizer=serialize_option(self.bias_regularizer),
            activity_regularizer=serialize_option(self.activity_regularizer),
            kernel_constraint=serialize_option(self.kernel_constraint),
            bias_constraint=serialize_option(self.bias_constraint),
        )
        return cfg
