"""``Sequential``: a stack of layers with Keras's API (``add``, ``summary``, ``compile``/``fit`` ...).

>>> model = Sequential([Embedding(5000, 15), LSTM(10), Dense(1, activation="sigmoid")])  # doctest: +SKIP
>>> model.compile(optimizer=Adam(), loss=BinaryCrossentropy(), metrics=["accuracy"])  # doctest: +SKIP
>>> model.fit(x_train, y_train, batch_size=128, epochs=5, validation_split=0.2)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from lstmtext.errors import ConfigError, DataError, LstmtextError
from lstmtext.layers.base import Layer, Shape, deserialize, register_layer, serialize
from lstmtext.layers.input_layer import InputLayer
from lstmtext.layers.symbolic import KerasTensor
from lstmtext.models.graph import Graph, adjust_rank
from lstmtext.models.model import Model, check_ids


@register_layer
class Sequential(Model):
    """A linear stack of layers with Keras's model API.

    Args:
        layers: optional list of layers (an :func:`~lstmtext.layers.Input` may come first).
        name: the model's name (``"sequential"``, ``"sequential_1"`` ...).
        trainable: whether the weights are trained.

    The weights (``state_dict()`` keys ``"layers.<i>.<weight>"``) are created when the input shape is
    known: from an ``Input``, a first layer's ``input_shape``/``input_length``, ``build(shape)``, or the
    first call/``fit``. The model is then a layer graph run by the executor Functional models use.
    """

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.layers = nn.ModuleList()
        self._input_layer: InputLayer | None = None
        self.build_input_shape: Shape | None = None
        self._input_dtype: str | None = None
        if layers is not None:
            if isinstance(layers, Layer):
                raise ConfigError("Sequential: layers must be a list of layers, got a single layer; wrap it in [...]")
            for layer in layers:
                self.add(layer)

    # -- structure ------------------------------------------------------------------------------
    def add(self, layer: Layer | KerasTensor) -> None:
        """Append ``layer`` (or set the input with an :func:`Input` as the first entry)."""
        if isinstance(layer, KerasTensor) and layer.history is not None and isinstance(layer.history[0], InputLayer):
            layer = layer.history[0]
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
        if self.build_input_shape is not None:
            self._rebuild_graph()
        elif declared is not None:
            self.build(declared)

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not len(self.layers):
            raise ConfigError("Sequential.pop: the model has no layers")
        layer = self.layers[-1]
        del self.layers[-1]
        if self.build_input_shape is not None:
            self._rebuild_graph()
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
        self._rebuild_graph()
        self.built = True

    def _rebuild_graph(self) -> None:
        """The layer graph from the input through every layer (Keras's ``Sequential._maybe_rebuild``)."""
        if self._graph is not None:  # forget the previous graph's calls, so that layer.output stays one tensor
            for node in self._graph.nodes:
                nodes = node.layer._inbound_nodes
                if nodes and nodes[-1] is node:
                    nodes.pop()
        if self._input_layer is not None:
            inputs = self._input_layer.tensor
        else:
            # A leading layer that only reorders its input (ReverseSequence) takes what the next one takes.
            first = next((layer for layer in self.layers if not getattr(layer, "reorders_only", False)), None)
            dtype = ("string" if first is not None and first.string_input else self._input_dtype
                     or ("int64" if getattr(first, "input_dim", None) is not None else "float32"))
            inputs = InputLayer(batch_shape=self.build_input_shape, dtype=dtype, name=f"{self.name}_input").tensor
        x = inputs
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if isinstance(x, (list, tuple)) and i < len(self.layers) - 1:
                raise ConfigError(f"Sequential: layer {layer.name!r} returns {len(x)} tensors; each layer of a "
                                  "Sequential model must return one (use the Functional API)")
        self._graph = Graph(inputs, x, owner=f'Sequential "{self.name}"')
        self.built = True

    def _build_for(self, inputs: Any) -> None:
        if isinstance(inputs, torch.Tensor):
            self._input_dtype = "int64" if not inputs.is_floating_point() else "float32"
        self.build((None, *inputs.shape[1:]))
        if isinstance(inputs, torch.Tensor):
            self.to(inputs.device)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def output_shape_for(self, x: Any) -> Shape:
        if not self.built:
            self.build((None, *x.shape[1:]))
        return self.compute_output_shape((None, *x.shape[1:]))

    def takes_strings(self) -> bool:
        if self._input_layer is not None:
            return self._input_layer.input_dtype == "string"
        return bool(len(self.layers)) and self.layers[0].string_input

    def check_input(self, x: torch.Tensor, arg: str = "x") -> None:
        """Raise :class:`DataError` naming ``arg`` if the model cannot take ``x``: wrong rank or fixed
        size, or (for a first Embedding layer) ids outside ``[0, input_dim)``."""
        if self._graph is not None:  # Keras's rank rule, as the graph applies it when the model runs
            x = adjust_rank(x, self._graph.inputs[0])
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
        if getattr(first, "input_dim", None) is not None:
            check_ids(x, first, arg)

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
            try:
                model.build(tuple(shape))
            except Exception as e:  # a layer argument only its weights' creation rejects (e.g. minval > maxval)
                detail = str(e) if isinstance(e, LstmtextError) else f"{type(e).__name__}: {e}"
                raise ConfigError(f"Sequential config: cannot build for input shape {shape}: {detail}") from e
        return model
