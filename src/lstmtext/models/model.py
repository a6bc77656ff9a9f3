"""``Model``: the one model base (a :class:`~lstmtext.layers.Layer` with Keras's training API), and Functional models.

As in Keras (``keras/src/models/model.py``, ``functional.py``), a model is built one of three ways:

* Functional: ``Model(inputs, outputs)`` on symbolic tensors (a :class:`Functional` is returned);
* Sequential: :class:`~lstmtext.models.Sequential`, a Model that builds the same kind of layer graph;
* subclassing: ``class M(Model)`` with ``__init__`` creating layers and ``call(inputs, training=None)``.

Functional and Sequential models run through one executor (:class:`~lstmtext.models.graph.Graph`).

>>> inputs = Input(shape=(None,), dtype="int32")                      # doctest: +SKIP
>>> x = Embedding(20000, 128)(inputs)                                 # doctest: +SKIP
>>> x = Bidirectional(LSTM(64))(x)                                    # doctest: +SKIP
>>> model = Model(inputs, Dense(1, activation="sigmoid")(x))          # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lstmtext.errors import ConfigError, DataError
from lstmtext.layers.base import Layer, deserialize, register_layer, serialize
from lstmtext.layers.symbolic import KerasTensor, flatten, is_symbolic, pack_like
from lstmtext.models import saving
from lstmtext.models.graph import Graph
from lstmtext.models.shared_padding import SharedPadding
from lstmtext.models.summary import format_summary
from lstmtext.training.trainer import Trainer


def to_tensors(inputs: Any) -> Any:
    """Array-likes in a nest of inputs as tensors (string arrays, for layers that take text, unchanged)."""
    def convert(x: Any) -> Any:
        if isinstance(x, torch.Tensor) or x is None:
            return x
        arr = np.asarray(x)
        if arr.dtype.kind in "OUS":
            return arr
        return torch.as_tensor(arr)

    if isinstance(inputs, (list, tuple, dict)):
        return pack_like(inputs, [convert(x) for x in flatten(inputs)])
    return convert(inputs)


@register_layer
class Model(Trainer, Layer):
    """A layer with Keras's model API: ``compile``/``fit``/``evaluate``/``predict``, ``summary``, saving.

    ``Model(inputs, outputs, name=None)`` makes a Functional model (see :class:`Functional`). Subclass it
    for a model written as Python: create the layers in ``__init__`` (after ``super().__init__()``) and
    use them in ``call(self, inputs, training=None)``; the weights are created by the first call.

    Args:
        name: the model's name.
        trainable: whether the weights are trained.
    """

    supports_masking = True

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args: Any, name: str | None = None, trainable: bool = True, dtype: str = "float32",
                 **kwargs: Any) -> None:
        if args:
            raise ConfigError(f"{type(self).__name__}: unexpected positional arguments; a subclassed model's "
                              "__init__ should call super().__init__() (optionally with name=...)")
        super().__init__(name=name, trainable=trainable, dtype=dtype, **kwargs)
        self._init_trainer()
        self._graph: Graph | None = None
        # Like Keras, model(x) runs in inference mode (no dropout) unless training=True is passed;
        # fit() switches to training mode for its steps and back afterwards.
        self.eval()

    # -- the layers -----------------------------------------------------------------------------
    @property
    def layers(self) -> Any:
        """The model's layers (Functional: in graph order, Input layers included, as Keras)."""
        stored = self._modules.get("layers")
        if stored is not None:
            return stored
        return self._sublayers()

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or index (to build sub-models from ``layer.input``/``layer.output``)."""
        layers = list(self.layers)
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ConfigError(f"{self.name}.get_layer: index {index} is out of range for {len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ConfigError(f"{self.name}.get_layer: no layer named {name!r}; layers: {[la.name for la in layers]}")

    # -- the graph's symbolic inputs and outputs ---------------------------------------------------
    def _require_graph(self, what: str) -> Graph:
        if self._graph is None:
            if hasattr(self, "build_input_shape"):  # a Sequential model without an input shape yet
                raise ConfigError(f"{self.name}: the model is not built yet, so it has no symbolic {what}; give it "
                                  "an Input(shape) or call build(input_shape)")
            raise ConfigError(f"{self.name}: a subclassed model has no symbolic {what}; it is defined by call()")
        return self._graph

    @property
    def inputs(self) -> list[KerasTensor]:
        """The model's symbolic inputs (Functional and built Sequential models), as Keras's ``model.inputs``."""
        return list(self._require_graph("inputs").inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._require_graph("outputs").outputs)

    @property
    def input(self) -> Any:
        return self._require_graph("input").inputs_struct

    @property
    def output(self) -> Any:
        return self._require_graph("output").outputs_struct

    # -- calling --------------------------------------------------------------------------------
    def forward(self, inputs: Any, mask: Any = None, training: bool | None = None, **kwargs: Any) -> Any:
        if is_symbolic(inputs, kwargs):
            return self._call_symbolic(inputs, mask, kwargs)
        inputs = to_tensors(inputs)
        if not self.built:
            self._build_for(inputs)
        if training is None:
            training = self.training
        return self._call_accepting(inputs, mask, training, kwargs)

    def _call_accepting(self, inputs: Any, mask: Any, training: bool, kwargs: dict[str, Any]) -> Any:
        # A subclassed model's call may take neither mask nor training (Keras passes only what it accepts).
        accepts = _call_arguments(type(self))
        if "mask" in accepts and mask is not None:
            kwargs["mask"] = mask
        if "training" in accepts:
            kwargs["training"] = training
        return self.call(inputs, **kwargs)

    def call(self, inputs: Any, mask: Any = None, training: bool = False, **kwargs: Any) -> Any:
        if self._graph is not None:
            masks = None if mask is None else flatten(mask) if isinstance(mask, (list, tuple, dict)) else [mask]
            return self._graph.run(self._graph.inputs_from(inputs, self.name), masks, training)
        raise NotImplementedError(f"{type(self).__name__}.call: a subclassed Model must define "
                                  "call(self, inputs, training=None), or use Model(inputs, outputs)")

    def _build_for(self, inputs: Any) -> None:
        # A subclassed model's layers create their weights as call() reaches them.
        self.built = True

    def build(self, input_shape: Any = None) -> None:
        """Create the weights by running ``call`` once on zeros of ``input_shape`` (a subclassed model)."""
        if self.built:
            return
        if input_shape is None:
            raise ConfigError(f"{self.name}.build: give input_shape, e.g. build((None, 300))")

        def zeros(shape: Any) -> torch.Tensor:
            return torch.zeros(tuple(1 if d is None else d for d in shape))

        is_leaf = isinstance(input_shape, tuple) or (isinstance(input_shape, list) and all(
            d is None or isinstance(d, int) for d in input_shape))
        data = zeros(input_shape) if is_leaf else [zeros(s) for s in input_shape]
        self.built = True
        with torch.no_grad():
            self._call_accepting(data, None, False, {})

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self._graph is not None:
            shapes = [tuple(x.shape) for x in self._graph.outputs]
            return pack_like(self._graph.outputs_struct, shapes) if len(shapes) > 1 else shapes[0]
        raise ConfigError(f"{self.name}: the output shape of a subclassed model is known by calling it on data")

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The output masks of a Functional or Sequential model: those its own layers compute (Keras keeps
        them on the output tensors), in the outputs' structure; None for a subclassed model.

        This runs the model on ``inputs``; a model used as a layer inside another graph gets its output and
        its mask from one run (:meth:`call_with_mask`).
        """
        if self._graph is None:
            return None
        with torch.no_grad():
            return self.call_with_mask(inputs, mask=mask, training=False)[1]

    def call_with_mask(self, inputs: Any, mask: Any = None, training: bool = False) -> tuple[Any, Any]:
        """``(outputs, output masks)`` of a Functional or Sequential model in one run of its graph."""
        graph = self._require_graph("outputs")
        inputs = to_tensors(inputs)
        if training is None:
            training = self.training
        masks = None if mask is None else flatten(mask) if isinstance(mask, (list, tuple, dict)) else [mask]
        return graph.run(graph.inputs_from(inputs, self.name), masks, training, with_masks=True)

    def output_shape_for(self, x: Any) -> Any:
        """The output shape(s) for inputs like ``x`` (batch axis None); builds an unbuilt model on ``x``."""
        if self._graph is not None:
            return self.compute_output_shape(None)
        sample = pack_like(x, [v[:2] for v in flatten(x)]) if isinstance(x, (list, tuple, dict)) else x[:2]
        with torch.no_grad():
            out = self(sample, training=False)
        return pack_like(out, [(None, *o.shape[1:]) for o in flatten(out)]) if isinstance(
            out, (list, tuple, dict)) else (None, *out.shape[1:])

    def known_output_names(self) -> list[str] | None:
        """The outputs' names (dict keys, else the output layers' names); None until a subclassed model runs."""
        if self._graph is None:
            return None
        struct = self._graph.outputs_struct
        if isinstance(struct, dict):
            return sorted(struct)
        names: list[str] = []
        for x in self._graph.outputs:
            name = x.history[0].name  # type: ignore[index]
            names.append(name if name not in names else f"{name}_{names.count(name)}")
        return names

    def takes_strings(self) -> bool:
        """Whether the model's input is raw text: its first layer says so (``Layer.string_input``)."""
        if self._graph is not None:
            return any(x.dtype == "string" for x in self._graph.inputs)
        layers = self._sublayers()
        return bool(layers) and layers[0].string_input

    def shared_padding(self, x: Any) -> SharedPadding | None:
        """A runner that skips the leading padding the rows of ``x`` share, for ``predict`` and ``evaluate``;
        None where the model is not a chain it applies to (see :mod:`lstmtext.models.shared_padding`)."""
        return None if self._graph is None else SharedPadding.of(self._graph, x)

    # -- checks ---------------------------------------------------------------------------------
    def check_input(self, x: Any, arg: str = "x") -> None:
        """Raise :class:`DataError` naming ``arg`` if the model cannot take ``x``: wrong rank or fixed size,
        or token ids outside ``[0, input_dim)`` of an Embedding the input goes to."""
        if self._graph is None:
            return
        single = len(self._graph.inputs) == 1
        values = self._graph.inputs_from(x, self.name) if single or not isinstance(x, torch.Tensor) else [x]
        for tensor, value in zip(self._graph.inputs, values):
            name = arg if len(self._graph.inputs) == 1 else f"{arg}[{tensor.name!r}]"
            shape = tuple(value.shape)
            declared = tensor.shape
            if len(shape) != len(declared) or any(e is not None and e != s for e, s in zip(declared[1:], shape[1:])):
                raise DataError(f"{name}: expected inputs of shape {tuple(declared)} (rank {len(declared)}), "
                                f"got shape {shape}")
            if isinstance(value, np.ndarray):  # strings: only a layer that takes them
                if tensor.dtype != "string":
                    raise DataError(f"{name}: got an array of {value.dtype} (text?), but the model's input "
                                    f"{tensor.name!r} takes {tensor.dtype} numbers; encode the text first (e.g. a "
                                    "TextVectorization layer first in the model, or a Tokenizer)")
                continue
            for node in self._graph.nodes:
                if node.args[0] is tensor and getattr(node.layer, "input_dim", None) is not None:
                    check_ids(value, node.layer, name)

    # -- weights --------------------------------------------------------------------------------
    def _sublayers(self) -> list[Layer]:
        """The layers directly inside the model (through lists and dicts of modules), each once."""
        out: list[Layer] = []
        seen: set[int] = set()

        def walk(module: nn.Module) -> None:
            for child in module.children():
                if isinstance(child, Layer):
                    if id(child) not in seen:
                        seen.add(id(child))
                        out.append(child)
                else:  # nn.ModuleList / ModuleDict / Sequential containers
                    walk(child)

        walk(self)
        return out

    @property
    def weights(self) -> list[nn.Parameter]:
        """The weights of every layer, in layer order (Keras's ``get_weights`` order); shared ones once."""
        out: list[nn.Parameter] = []
        seen: set[int] = set()
        for layer in self._sublayers():
            for w in layer.weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    @property
    def losses(self) -> list[torch.Tensor]:
        return [loss for layer in self._sublayers() for loss in layer.losses]

    def apply_constraints(self) -> None:
        for layer in self._sublayers():
            layer.apply_constraints()

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if not w.requires_grad]

    def has_constraints(self) -> bool:
        """Whether any weight has a constraint (the train step skips the projection otherwise)."""
        return any(c is not None for m in self.modules() if isinstance(m, Layer) for _, _, c in m._weight_specs)

    def count_params(self) -> int:
        if not self.built:
            raise ConfigError(
                f"{self.name}: count_params() needs a built model; give an Input(shape) or call build(input_shape)"
            )
        return sum(int(w.numel()) for w in self.weights)

    def get_weights(self) -> list[np.ndarray]:
        if not self.built:
            raise ConfigError(f"{self.name}.get_weights: the model is not built yet")
        return super().get_weights()

    # -- summary --------------------------------------------------------------------------------
    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn: Callable[[str], Any] | None = None, show_trainable: bool = False, **kwargs: Any) -> None:
        """Print Keras's summary table: layer (type), output shape, param # (and "Connected to" for a
        Functional model that is not a plain stack), and the parameter totals."""
        (print_fn or print)(format_summary(self, line_length=line_length, show_trainable=show_trainable))

    # -- saving ---------------------------------------------------------------------------------
    def save(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write a checkpoint folder: config, weights, and (when compiled) optimizer + training state."""
        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write the weights to one safetensors file (atomically)."""
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str | os.PathLike[str]) -> None:
        """Load weights written by :meth:`save_weights` (or a checkpoint folder's ``model.safetensors``)."""
        saving.load_weights(self, filepath)

    def get_config(self) -> dict[str, Any]:
        """A subclassed model has no config: rebuilding it needs its class (Keras's rule)."""
        return {"name": self.name, "trainable": self.trainable}


def check_ids(x: torch.Tensor, layer: Layer, arg: str) -> None:
    """Raise :class:`DataError` naming ``arg`` unless ``x`` holds integer ids in ``[0, layer.input_dim)``."""
    input_dim = layer.input_dim  # type: ignore[attr-defined]
    if not x.numel():
        return
    if x.is_floating_point() and not bool(torch.all(x == torch.round(x))):
        raise DataError(f"{arg}: token ids for {layer.name} must be integers, got fractional values")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= input_dim:
        raise DataError(f"{arg}: token ids must lie in [0, {input_dim}) for {layer.name} (input_dim={input_dim}), "
                        f"got ids from {lo} to {hi}")


_CALL_ARGS: dict[type, frozenset[str]] = {}


def _call_arguments(cls: type) -> frozenset[str]:
    """The keyword arguments ``cls.call`` takes (``**kwargs`` counts as all of them)."""
    if cls not in _CALL_ARGS:
        params = inspect.signature(cls.call).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            _CALL_ARGS[cls] = frozenset({"mask", "training"})
        else:
            _CALL_ARGS[cls] = frozenset(p.name for p in params)
    return _CALL_ARGS[cls]


@register_layer
class Functional(Model):
    """A model defined by its symbolic inputs and outputs: ``Model(inputs, outputs)`` returns one.

    Args:
        inputs: a tensor from :func:`~lstmtext.layers.Input`, or a list / dict of them.
        outputs: tensors computed from the inputs by calling layers (one, a list, or a dict by name).
        name: the model's name (``"functional"``, ``"functional_1"`` ...).
        trainable: whether the weights are trained.

    Layers may be shared (called several times), models may be used as layers, and ``get_layer(...)``
    with ``layer.input``/``layer.output`` builds sub-models, as in Keras. ``fit``/``predict`` take one
    array per input (a list in the inputs' order, or a dict by input name).

    Raises:
        ConfigError: inputs that are not ``Input`` tensors, or outputs not computed from them.
    """

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, trainable=trainable, **kwargs)
        graph = Graph(inputs, outputs, owner=f'Model "{self.name}"')
        self._graph = graph
        self.layers = nn.ModuleList(graph.layers)
        self.built = True

    @property
    def input_names(self) -> list[str]:
        return [x.name or "" for x in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """The outputs' names: the keys of a dict of outputs, else the output layers' names (Keras's)."""
        return self.known_output_names() or []

    # -- config (Keras's Functional format) -----------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Keras's Functional config: the layers with their ``inbound_nodes``, ``input_layers``, ``output_layers``."""
        graph = self._graph
        if graph is None:
            raise ConfigError(f"{self.name}: the model has no graph")
        own = {id(n) for n in graph.nodes} | {id(x.history[0]._inbound_nodes[0]) for x in graph.inputs}

        def node_position(layer: Layer, node_index: int) -> int:
            # Index among the nodes of this model only (a shared layer may have calls elsewhere).
            return sum(1 for n in layer._inbound_nodes[:node_index] if id(n) in own)

        def tensor_ref(t: KerasTensor, outer: bool = False) -> list[Any]:
            layer, node_index, tensor_index = t.history  # type: ignore[misc]
            # Keras counts a Functional model's own inputs -> outputs node first: in input_layers and
            # output_layers a nested model's calls start at 1 (in inbound nodes at 0, read back as -1: the last).
            offset = 1 if outer and isinstance(layer, Functional) else 0
            return [layer.name, node_position(layer, node_index) + offset, tensor_index]

        def tensor_config(x: Any) -> Any:
            if isinstance(x, KerasTensor):
                return {"class_name": "__keras_tensor__",
                        "config": {"shape": list(x.shape), "dtype": x.dtype, "keras_history": tensor_ref(x)}}
            return x

        layers = []
        for layer in graph.layers:
            inbound = []
            for node in layer._inbound_nodes:
                if id(node) in own and node.input_tensors:
                    inbound.append({"args": [pack_like(a, [tensor_config(v) for v in flatten(a)]) for a in node.args],
                                    "kwargs": {k: pack_like(v, [tensor_config(t) for t in flatten(v)])
                                               for k, v in node.kwargs.items()}})
            layers.append({**serialize(layer), "name": layer.name, "inbound_nodes": inbound})

        def refs(structure: Any) -> Any:
            if isinstance(structure, KerasTensor):
                return tensor_ref(structure, outer=True)
            if isinstance(structure, dict):
                return {k: refs(v) for k, v in structure.items()}
            return [refs(v) for v in structure]

        return {"name": self.name, "trainable": self.trainable, "layers": layers,
                "input_layers": refs(graph.inputs_struct), "output_layers": refs(graph.outputs_struct)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Functional:
        """Rebuild from :meth:`get_config` (or a Keras Functional config): layers, then their calls in order."""
        return functional_from_config(cls, config)


def functional_from_config(cls: type[Functional], config: dict[str, Any]) -> Functional:
    """Create the layers a Functional config lists and replay their calls until every node is made."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ConfigError("Functional config: expected an object with a 'layers' list")
    created: dict[str, Layer] = {}
    pending: dict[str, list[Any]] = {}
    order: list[str] = []
    for spec in config["layers"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ConfigError(f"Functional config: each layer needs a 'name', got {spec!r:.200}")
        name = spec["name"]
        if name in created:
            raise ConfigError(f"Functional config: two layers are named {name!r}")
        layer = deserialize({"class_name": spec.get("class_name"), "config": spec.get("config", {})})
        if layer.name != name:
            layer.name = name
        created[name] = layer
        order.append(name)
        nodes = spec.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ConfigError(f"Functional config: layer {name!r}: 'inbound_nodes' must be a list")
        pending[name] = list(nodes)

    class _NotYet(Exception):
        pass

    def tensor(ref: Any) -> KerasTensor:
        if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)):
            raise ConfigError(f"Functional config: bad tensor reference {ref!r:.200}")
        layer_name, node_index, tensor_index = ref
        layer = created.get(layer_name)
        if layer is None:
            raise ConfigError(f"Functional config: a node refers to unknown layer {layer_name!r}")
        if not isinstance(node_index, int):
            raise ConfigError(f"Functional config: bad node index {node_index!r} for layer {layer_name!r}")
        node_index -= 1 if isinstance(layer, Functional) else 0  # Keras: a model's node 0 is its own graph
        if not -1 <= node_index < len(layer._inbound_nodes) or not layer._inbound_nodes:
            raise _NotYet
        outs = layer._inbound_nodes[node_index].output_tensors
        if not isinstance(tensor_index, int) or not 0 <= tensor_index < len(outs):
            raise ConfigError(f"Functional config: layer {layer_name!r} has no output {tensor_index}")
        return outs[tensor_index]

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            return tensor(value.get("config", {}).get("keras_history"))
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    def legacy(node: list[Any]) -> dict[str, Any]:
        # Keras 2 format: [[layer, node, tensor, kwargs], ...]
        refs = [{"class_name": "__keras_tensor__", "config": {"keras_history": entry[:3]}} for entry in node]
        kwargs = node[0][3] if node and len(node[0]) > 3 and isinstance(node[0][3], dict) else {}
        return {"args": [refs[0] if len(refs) == 1 else refs], "kwargs": kwargs}

    while any(pending.values()):
        progressed = False
        for name in order:
            layer = created[name]
            while pending[name]:
                node = pending[name][0]
                if isinstance(node, list):
                    node = legacy(node)
                if not isinstance(node, dict):
                    raise ConfigError(f"Functional config: layer {name!r}: bad inbound node {node!r:.200}")
                try:
                    args = resolve(node.get("args", []))
                    kwargs = resolve(node.get("kwargs", {}))
                except _NotYet:
                    break
                if not isinstance(args, list) or not args or not isinstance(kwargs, dict):
                    raise ConfigError(f"Functional config: layer {name!r}: a node needs 'args' and 'kwargs'")
                kwargs = {k: v for k, v in kwargs.items() if k not in ("mask", "training")}
                layer(*args, **kwargs)
                pending[name].pop(0)
                progressed = True
        if not progressed:
            stuck = sorted(k for k, v in pending.items() if v)
            raise ConfigError(f"Functional config: the graph has loops or disconnected nodes (layers {stuck})")

    def refs(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            return tensor(value)
        if isinstance(value, dict):
            return {k: refs(v) for k, v in value.items()}
        if isinstance(value, list):
            return [refs(v) for v in value]
        raise ConfigError(f"Functional config: bad input/output reference {value!r:.200}")

    try:
        inputs, outputs = refs(config.get("input_layers")), refs(config.get("output_layers"))
    except _NotYet:
        raise ConfigError("Functional config: input_layers/output_layers refer to a node that was never made") from None
    return cls(inputs, outputs, name=config.get("name"), trainable=config.get("trainable", True))

