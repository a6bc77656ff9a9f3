"""Embedding: integer ids -> dense vectors, with Keras's ``mask_zero``."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.kernels.training_ops import embedding_lookup
from lstmtext.layers import initializers
from lstmtext.layers.base import Layer, Shape, register_layer
from lstmtext.layers.weight_options import resolve_constraint, resolve_regularizer, serialize_option


@register_layer
class Embedding(Layer):
    """Turns ids ``(batch, time)`` into vectors ``(batch, time, output_dim)``, as ``keras.layers.Embedding``.

    Args:
        input_dim: vocabulary size; ids must lie in ``[0, input_dim)``.
        output_dim: size of each vector.
        embeddings_initializer: Keras initializer (default ``"uniform"``: U(-0.05, 0.05)).
        embeddings_regularizer: optional regularizer of the table.
        embeddings_constraint: optional constraint applied after each optimizer step.
        mask_zero: id 0 is padding; the layer emits a mask ``ids != 0`` for the layers after it.
        input_length: accepted for tf.keras compatibility; fixes the summary's time axis.

    >>> Embedding(5000, 15)(torch.zeros(2, 300, dtype=torch.long)).shape
    torch.Size([2, 300, 15])
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        input_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        if input_length is not None and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"Embedding: {arg} must be a positive integer, got {v!r}")
        if input_length is not None and (not isinstance(input_length, int) or input_length <= 0):
            raise ConfigError(f"Embedding: input_length must be a positive integer or None, got {input_length!r}")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.input_length = input_length
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = resolve_regularizer(embeddings_regularizer)
        self.embeddings_constraint = resolve_constraint(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape: Shape) -> None:
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
                        regularizer=self.embeddings_regularizer, constraint=self.embeddings_constraint)
        self.built = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        if inputs.is_floating_point():
            inputs = inputs.long()
        # CPU float32: a compiled lookup whose gradient skips F.embedding's sort (see lstmtext.kernels).
        return embedding_lookup(self.embeddings, inputs)

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        return inputs != 0 if self.mask_zero else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape), self.output_dim)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=serialize_option(self.embeddings_regularizer),
            embeddings_constraint=serialize_option(self.embeddings_constraint),
            mask_zero=self.mask_zero,
        )
        if self.input_length is not None:
            cfg["input_length"] = self.input_length
            cfg.pop("batch_input_shape", None)
        return cfg
