"""BatchNormalization: Keras 3's layer (``keras.layers.BatchNormalization``), its weights, defaults and modes.

In training (``training=True`` and the layer trainable) the inputs are normalised with the mean and the
(biased) variance of the batch over every axis but ``axis``, and the moving statistics move towards them:
``moving = moving * momentum + batch * (1 - momentum)``. Otherwise, and always when ``trainable`` is
False (Keras 3's rule, what fine-tuning with frozen layers relies on), the moving statistics are used.
With a mask (``(batch, steps)`` for 3-D inputs), only the unmasked steps count in the batch statistics.
Output: ``gamma * (x - mean) / sqrt(var + epsilon) + beta``.

Weights, in Keras's order: ``gamma``, ``beta`` (trainable, when ``scale`` / ``center``), ``moving_mean``,
``moving_variance`` (never trained: updated by the forward pass, saved with the others).
"""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers import initializers
from lstmtext.layers.base import Layer, Shape, register_layer
from lstmtext.layers.weight_options import resolve_constraint, resolve_regularizer, serialize_option


@register_layer
class BatchNormalization(Layer):
    """Normalise the features of a batch, as ``keras.layers.BatchNormalization``.

    Args:
        axis: the feature axis (default -1); the statistics are taken over every other axis.
        momentum: of the moving statistics (Keras: 0.99).
        epsilon: added to the variance (Keras: 1e-3).
        center: learn an offset ``beta``.
        scale: learn a factor ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer:
            Keras initializers (zeros, ones, zeros, ones).
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint: optional.

    >>> bn = BatchNormalization()
    >>> y = bn(torch.tensor([[1.0, 10.0], [3.0, 30.0]]), training=True)
    >>> [round(v, 3) for v in y[:, 1].tolist()], [round(v, 2) for v in bn.moving_mean.tolist()]
    ([-0.999, 0.999], [0.02, 0.2])
    """

    supports_masking = True

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ConfigError(f"BatchNormalization: axis must be an integer, got {axis!r}")
        for name, value, low, high in (("momentum", momentum, 0.0, 1.0), ("epsilon", epsilon, 0.0, None)):
            if (not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= low
                    or (high is not None and not value <= high) or (name == "epsilon" and value <= 0)):
                raise ConfigError(f"BatchNormalization: {name} must be a number "
                                  f"{'in [0, 1]' if high else '> 0'}, got {value!r}")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = resolve_regularizer(beta_regularizer)
        self.gamma_regularizer = resolve_regularizer(gamma_regularizer)
        self.beta_constraint = resolve_constraint(beta_constraint)
        self.gamma_constraint = resolve_constraint(gamma_constraint)

    def build(self, input_shape: Shape) -> None:
        rank = len(input_shape)
        if not -rank <= self.axis < rank or rank < 2:
            raise ConfigError(f"{self.name}: axis {self.axis} is not an axis of inputs of shape {tuple(input_shape)} "
                              "(a batch axis and at least one more)")
        self._axis = self.axis % rank
        if self._axis == 0:
            raise ConfigError(f"{self.name}: axis 0 is the batch axis; choose the feature axis (default -1)")
        dim = input_shape[self._axis]
        if dim is None:
            raise ConfigError(f"{self.name}: the size of axis {self.axis} must be known, got shape {input_shape}")
        if self.scale:
            self.add_weight("gamma", (dim,), self.gamma_initializer, regularizer=self.gamma_regularizer,
                            constraint=self.gamma_constraint)
        if self.center:
            self.add_weight("beta", (dim,), self.beta_initializer, regularizer=self.beta_regularizer,
                            constraint=self.beta_constraint)
        self.add_weight("moving_mean", (dim,), self.moving_mean_initializer, trainable=False)
        self.add_weight("moving_variance", (dim,), self.moving_variance_initializer, trainable=False)
        self.built = True

    @Layer.trainable.setter  # type: ignore[attr-defined, untyped-decorator]
    def trainable(self, value: bool) -> None:
        # The moving statistics are never trained, whatever the layer's flag (Keras: non-trainable weights).
        self._trainable = bool(value)
        for name, p in self.named_parameters(recurse=False):
            p.requires_grad_(self._trainable and name not in ("moving_mean", "moving_variance"))

    def _shape(self, x: torch.Tensor) -> list[int]:
        shape = [1] * x.dim()
        shape[self._axis] = x.shape[self._axis]
        return shape

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        if inputs.shape[self._axis] != self.moving_mean.shape[0]:
            raise ConfigError(f"{self.name}: expected {self.moving_mean.shape[0]} features on axis {self.axis}, got "
                              f"shape {tuple(inputs.shape)}")
        x = inputs.to(self.moving_mean.dtype)
        shape = self._shape(x)
        if training and self.trainable:
            axes = [d for d in range(x.dim()) if d != self._axis]
            if mask is not None:
                # Only the unmasked steps count: a (batch, steps) mask weighs every feature of its step;
                # Keras adds its fuzz factor (1e-7) to the count, so a fully masked batch gives zeros.
                w = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.dim() - mask.dim())))
                count = w.sum(dim=[d for d in axes if d < w.dim()], keepdim=True) + 1e-7
                mean = (x * w).sum(dim=axes, keepdim=True) / count
                var = (((x - mean) ** 2) * w).sum(dim=axes, keepdim=True) / count
            else:
                mean = x.mean(dim=axes, keepdim=True)
                var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
            with torch.no_grad():
                self.moving_mean.mul_(self.momentum).add_(mean.reshape(-1), alpha=1.0 - self.momentum)
                self.moving_variance.mul_(self.momentum).add_(var.reshape(-1), alpha=1.0 - self.momentum)
        else:
            mean, var = self.moving_mean.reshape(shape), self.moving_variance.reshape(shape)
        y = (x - mean) * torch.rsqrt(var + self.epsilon)
        if self.scale:
            y = y * self.gamma.reshape(shape)
        if self.center:
            y = y + self.beta.reshape(shape)
        return y

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            axis=self.axis, momentum=self.momentum, epsilon=self.epsilon, center=self.center, scale=self.scale,
            beta_initializer=initializers.serialize(self.beta_initializer),
            gamma_initializer=initializers.serialize(self.gamma_initializer),
            moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=initializers.serialize(self.moving_variance_initializer),
            beta_regularizer=serialize_option(self.beta_regularizer),
            gamma_regularizer=serialize_option(self.gamma_regularizer),
            beta_constraint=serialize_option(self.beta_constraint),
            gamma_constraint=serialize_option(self.gamma_constraint),
        )
        return cfg
