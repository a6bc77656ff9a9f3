"""``Sequential``: a stack of layers with Keras's API (``add``, ``summary``, ``compile``/``fit`` ...).

>>> model = Sequential([Embedding(5000, 15), LSTM(10), Dense(1, activation="sigmoid")])  # doctest: +SKIP
>>> model.compile(optimizer=Adam(), loss=BinaryCrossentropy(), metrics=["accuracy"])  # doctest: +SKIP
>>> model.fit(x_train, y_train, batch_size=128, epochs=5, validation_split=0.2)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lstmtext.errors import ConfigError, DataError, LstmtextError
from lstmtext.layers.base import Layer, Shape, deserialize, register_layer, serialize
from lstmtext.layers.embedding import Embedding
from lstmtext.training.trainer import Trainer


@register_layer
class InputLayer(Layer):
    """Declares the model's input shape and dtype (what ``keras.Input`` does for a Sequential model).

    Args:
        shape: shape of one sample, without the batch axis, e.g. ``(300,)``.
        batch_size: optional fixed batch size.
        dtype: ``"int32"``/``"int64"`` for token ids, ``"float32"`` for features.
        batch_shape: full shape including the batch axis (instead of ``shape``/``batch_size``).
        name: the layer's name.
    """

    def __init__(self, shape: Sequence[int | None] | None = None, batch_size: int | None = None,
                 dtype: str | None = None, batch_shape: Sequence[int | None] | None = None,
                 name: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("sparse", None), kwargs.pop("ragged", None), kwargs.pop("optional", None)
        super().__init__(name=name, **kwargs)
        if batch_shape is None:
            if shape is None:
                raise ConfigError("Input: give shape=(...) (without the batch axis) or batch_shape=(...)")
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size, *tuple(shape))
        batch_shape = tuple(batch_shape)
        for d in batch_shape[1:]:
            if d is not None and (not isinstance(d, int) or d <= 0):
                raise ConfigError(f"Input: shape dimensions must be positive integers or None, got {batch_shape[1:]}")
        self.batch_shape: Shape = batch_shape
        self.input_dtype = dtype or "float32"
        self.built = True

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        return inputs

    def get_config(self) -> dict[str, Any]:
        return {"batch_shape": list(self.batch_shape), "dtype": self.input_dtype, "name": self.name}


def Input(shape: Sequence[int | None] | int | None = None, batch_size: int | None = None, dtype: str | None = None,
          name: str | None = None, batch_shape: Sequence[int | None] | None = None) -> InputLayer:
    """Keras's ``Input`` for Sequential models: ``Sequential([Input((300,), dtype="int32"), Embedding(...)])``."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name)


@register_layer
class Sequential(Trainer, Layer):
    """A linear stack of layers with Keras's model API.

    Args:
        layers: optional list of layers (an :func:`Input` may come first).
        name: the model's name (``"sequential"``, ``"sequential_1"`` ...).
        trainable: whether the weights are trained.

    The weights (``state_dict()`` keys ``"layers.<i>.<weight>"``) are created when the input shape is
    known: from an ``Input``, a first layer's ``input_shape``/``input_length``, ``build(shape)``, or the
    first call/``fit``.
    """

    supports_masking = True

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._init_trainer()
        self.layers = nn.ModuleList()
        # Like Keras, model(x) runs in inference mode (no dropout) unless training=True is passed;
        # fit() switches to training mode for its steps and back afterwards.
        self.eval()
        self._input_layer: InputLayer | None = None
        self.build_input_shape: Shape | None = None
        if layers is not None:
            if isinstance(layers, Layer):
                raise ConfigError("Sequential: layers must be a list of layers, got a single layer; wrap it in [...]")
            for layer in layers:
                self.add(layer)

    # -- structure ------------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append ``layer`` (or set the input with an :func:`Input` as the first entry)."""
        if isinstance(layer, InputLayer):
            if len(self.layers) or self._input_layer is not None:
                raise ConfigError("Sequential.add: an Input can only be the first entry of the model")
            self._input_layer = layer
            self.build(layer.batch_shape)
            return
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential.add: layer must be an lstmtext Layer, got {type(layer).__name__}")
        if any(existing.name == layer.name for existing in self.layers):
            raise ConfigError(f"Sequential.add: a layer named {layer.name!r} is already in the model")
        self.layers.append(layer)
        layer.train(self.training)
        declared = self._declared_input_shape()
        if self.built:
            self._built_by_shape(self.build_input_shape)  # type: ignore[arg-type]
        elif declared is not None:
            self.build(declared)

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not len(self.layers):
            raise ConfigError("Sequential.pop: the model has no layers")
        layer = self.layers[-1]
        del self.layers[-1]
        return layer

    def _declared_input_shape(self) -> Shape | None:
        if self._input_layer is not None:
            return self._input_layer.batch_shape
        if len(self.layers) and self.layers[0].batch_input_shape is not None:
            return self.layers[0].batch_input_shape
        return None

    # -- building and calling -------------------------------------------------------------------
    def build(self, input_shape: Sequence[int | None] | None = None) -> None:
        """Create every layer's weights for inputs of ``input_shape`` (batch axis first, may be None)."""
        if input_shape is None:
            input_shape = self._declared_input_shape()
            if input_shape is None:
                raise ConfigError(f"{self.name}.build: give input_shape, e.g. build((None, 300))")
        shape = tuple(input_shape)
        if len(shape) < 1:
            raise ConfigError(f"{self.name}.build: input_shape must include the batch axis, got {shape}")
        self.build_input_shape = (None, *shape[1:])
        self._built_by_shape(self.build_input_shape)
        self.built = True

    def _built_by_shape(self, shape: Shape) -> Shape:
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
                layer.built = True
            shape = layer.compute_output_shape(shape)
        return shape

    def _build_for(self, inputs: torch.Tensor) -> None:
        self.build((None, *inputs.shape[1:]))
        self.to(inputs.device)

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kw: Any):
        x = inputs
        layers, i = self.layers, 0
        while i < len(layers):
            layer, nxt = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, Embedding) and hasattr(nxt, "accepts_embedding") and nxt.accepts_embedding(
                    layer, training):
                # Embedding -> LSTM: the LSTM projects the vocabulary instead of every token (same function).
                mask = layer.compute_mask(x, mask)
                x = nxt.call_embedding(layer, x, mask=mask, training=training)
                mask, i = nxt.compute_mask(x, mask), i + 2
                continue
            out = layer(x, mask=mask, training=training)
            mask = layer.compute_mask(x, mask)
            x, i = out, i + 1
        return x

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        return None

    def check_input(self, x: torch.Tensor, arg: str = "x") -> None:
        """Raise :class:`DataError` naming ``arg`` if the model cannot take ``x``: wrong rank or fixed
        size, or (for a first Embedding layer) ids outside ``[0, input_dim)``."""
        declared = self._declared_input_shape()
        shape = tuple(x.shape)
        if declared is not None:
            if len(shape) != len(declared) or any(e is not None and e != s for e, s in zip(declared[1:], shape[1:])):
                raise DataError(
                    f"{arg}: expected inputs of shape {tuple(declared)} (rank {len(declared)}), got shape {shape}"
                )
        elif self.built and self.build_input_shape is not None:
            # Built from earlier data: other lengths of the time axis are fine, another rank is not.
            expected = self.build_input_shape
            if len(shape) != len(expected) or any(e != s for e, s in zip(expected[2:], shape[2:])):
                raise DataError(
                    f"{arg}: the model was built for inputs of shape {tuple(expected)}, got shape {shape}"
                )
        elif len(self.layers):
            try:  # Build from the data's shape now, so a layer that rejects it names the argument.
                self.build((None, *shape[1:]))
            except LstmtextError as e:
                raise DataError(f"{arg}: the model cannot take inputs of shape {shape}: {e}") from e
        first = self.layers[0] if len(self.layers) else None
        input_dim = getattr(first, "input_dim", None)
        if input_dim is not None and x.numel():
            if x.is_floating_point() and not bool(torch.all(x == torch.round(x))):
                raise DataError(f"{arg}: token ids for {first.name} must be integers, got fractional values")
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= input_dim:
                raise DataError(
                    f"{arg}: token ids must lie in [0, {input_dim}) for {first.name} (input_dim={input_dim}), "
                    f"got ids from {lo} to {hi}"
                )

    # -- weights --------------------------------------------------------------------------------
    @property
    def weights(self) -> list[nn.Parameter]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if not w.requires_grad]

    @property
    def losses(self) -> list[torch.Tensor]:
        return [loss for layer in self.layers for loss in layer.losses]

    def apply_constraints(self) -> None:
        for layer in self.layers:
            layer.apply_constraints()

    def has_constraints(self) -> bool:
        """Whether any weight has a constraint (the train step skips the projection otherwise)."""

        def walk(layer: Layer) -> bool:
            own = any(c is not None for _, _, c in getattr(layer, "_weight_specs", []))
            return own or any(walk(ch) for ch in layer.children() if isinstance(ch, Layer))
        return any(walk(layer) for layer in self.layers)

    def count_params(self) -> int:
        if not self.built:
            raise ConfigError(
                f"{self.name}: count_params() needs a built model; give an Input(shape) or call build(input_shape)"
            )
        return sum(int(w.numel()) for w in self.weights)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or index."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ConfigError(f"{self.name}.get_layer: no layer named {name!r}; layers: {[la.name for la in self.layers]}")

    # -- summary --------------------------------------------------------------------------------
    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn: Callable[[str], Any] | None = None, show_trainable: bool = False, **kwargs: Any) -> None:
        """Print Keras's summary table: layer (type), output shape, param #, and the parameter totals."""
        from lstmtext.models.summary import format_summary

        text = format_summary(self, line_length=line_length, show_trainable=show_trainable)
        (print_fn or print)(text)

    # -- config ---------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """``{"name", "trainable", "layers": [{"class_name", "config"}, ...], "build_input_shape"}``."""
        layers = [serialize(self._input_layer)] if self._input_layer is not None else []
        layers += [serialize(layer) for layer in self.layers]
        return {"name": self.name, "trainable": self.trainable, "layers": layers,
                "build_input_shape": None if self.build_input_shape is None else list(self.build_input_shape)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ConfigError("Sequential config: expected an object with a 'layers' list")
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for spec in config["layers"]:
            model.add(deserialize(spec))
        shape = config.get("build_input_shape")
        if shape is not None and not model.built:
            ok = isinstance(shape, list | tuple) and 1 <= len(shape) <= 8 and all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape)
            if not ok:
                raise ConfigError(f"Sequential config: build_input_shape must be a list of 1 to 8 non-negative "
                                  f"integers or nulls (batch axis first), got {shape!r:.200}")
            model.build(tuple(shape))
        return model

    # -- saving (the checkpoint format lives in lstmtext.models.saving) ---------------------------
    def save(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write a checkpoint folder: config, weights, and (when compiled) optimizer + training state."""
        from lstmtext.models.saving import save_model

        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write the weights to one safetensors file (atomically)."""
        from lstmtext.models.saving import save_weights

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str | os.PathLike[str]) -> None:
        """Load weights written by :meth:`save_weights` (or a checkpoint folder's ``model.safetensors``)."""
        from lstmtext.models.saving import load_weights

        load_weights(self, filepath)

    def get_weights(self) -> list[np.ndarray]:
        if not self.built:
            raise ConfigError(f"{self.name}.get_weights: the model is not built yet")
        return super().get_weights()
