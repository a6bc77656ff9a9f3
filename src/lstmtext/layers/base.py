"""The Keras-style layer base: lazy build from the input shape, masks, weights in Keras order, config.

Every lstmtext layer is a ``torch.nn.Module`` that behaves like a Keras layer:

* weights are created by :meth:`Layer.build` on the first call (or by an explicit ``build``), with
  Keras's names, shapes and initializers, through :meth:`Layer.add_weight`;
* ``layer(x, mask=None, training=None)``: ``training`` defaults to the module's ``self.training``;
* masks are ``(batch, time)`` bool tensors, ``True`` for a real step (Keras's convention);
  :meth:`Layer.compute_mask` says what mask flows on to the next layer;
* called on symbolic tensors (``Input(...)`` or another layer's symbolic output) a layer builds itself for
  their shapes, checks them, and returns symbolic outputs recording the call (a
  :class:`~lstmtext.layers.symbolic.Node`): the Functional API's graph;
* :meth:`Layer.get_config` / :meth:`Layer.from_config` round-trip through JSON, and
  :func:`serialize` / :func:`deserialize` use Keras's ``{"class_name", "config"}`` envelope over a
  registry of lstmtext classes only (a config can never name arbitrary code).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lstmtext.errors import ConfigError, LstmtextError
from lstmtext.layers.symbolic import InputSpec, KerasTensor, Node, Shape, flatten, is_symbolic, pack_like

_LAYER_REGISTRY: dict[str, type[Layer]] = {}
_NAME_COUNTS: defaultdict[str, int] = defaultdict(int)


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make ``cls`` constructible from a config by its class name."""
    _LAYER_REGISTRY[cls.__name__] = cls
    return cls


def registered_layers() -> dict[str, type[Layer]]:
    """The classes :func:`deserialize` accepts, by name."""
    return dict(_LAYER_REGISTRY)


def _snake_case(name: str) -> str:
    # Keras's to_snake_case: LSTM -> lstm, GlobalAveragePooling1D -> global_average_pooling1d.
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """Keras-style automatic names: ``lstm``, ``lstm_1``, ``lstm_2`` ..."""
    n = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if n == 0 else f"{base}_{n}"


def clear_session() -> None:
    """Restart automatic layer names from ``lstm``, ``dense`` ... as ``keras.utils.clear_session()`` does."""
    _NAME_COUNTS.clear()



# Bytes that weights created in the current context may still take (None: no limit); see weight_budget.
_WEIGHT_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(max_bytes: int) -> Iterator[None]:
    """Refuse, before allocating, any weight that would take the weights created in the block past ``max_bytes``.

    Building a model from an untrusted config (a checkpoint's ``config.json``) allocates and initializes
    every weight the config asks for before the stored weights can be compared with them; under a budget
    of the stored weights' size, a config asking for a 10^9-row embedding is refused at once instead of
    allocating gigabytes.

    Args:
        max_bytes: total bytes of weights allowed in the block.

    Raises:
        ConfigError: from ``add_weight``, naming the layer, the weight, its shape and size.

    >>> with weight_budget(1 << 20):                    # doctest: +SKIP
    ...     model = Sequential.from_config(untrusted_config)
    """
    token = _WEIGHT_BUDGET.set([max_bytes])
    try:
        yield
    finally:
        _WEIGHT_BUDGET.reset(token)


def _charge_weight_budget(layer: str, name: str, shape: Sequence[int], dtype: torch.dtype) -> None:
    budget = _WEIGHT_BUDGET.get()
    if budget is None:
        return
    need = math.prod(max(int(d), 0) for d in shape) * torch.finfo(dtype).bits // 8
    if need > budget[0]:
        raise ConfigError(f"{layer}: weight {name!r} of shape {tuple(shape)} needs {need} bytes, more than the "
                          f"{budget[0]} bytes left of the weights being loaded")
    budget[0] -= need


def _is_structure(value: Any) -> bool:
    # A list/tuple is several inputs when its items are tensors, arrays or such structures; otherwise
    # (nested Python numbers, as in ``Embedding(...)([[1, 2], [3, 4]])``) it is one array.
    if isinstance(value, dict):
        return True
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(v, (torch.Tensor, np.ndarray)) or _is_structure(v) for v in value))


def to_tensors(inputs: Any) -> Any:
    """One input as a tensor, or a list/tuple/dict of inputs as the same structure of tensors."""
    if isinstance(inputs, torch.Tensor):
        return inputs
    if _is_structure(inputs):
        if isinstance(inputs, dict):
            return {k: to_tensors(v) for k, v in inputs.items()}
        items = [to_tensors(v) for v in inputs]
        return tuple(items) if isinstance(inputs, tuple) else items
    arr = np.asarray(inputs)
    if arr.dtype.kind in "OUS":  # text, for a layer that takes strings (``Layer.string_input``)
        return arr
    return torch.as_tensor(arr)


def shapes_of(inputs: Any) -> Any:
    """``tuple(x.shape)`` for one tensor, the same structure of shape tuples for several."""
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        return tuple(inputs.shape)
    if isinstance(inputs, dict):
        return {k: shapes_of(v) for k, v in inputs.items()}
    return [shapes_of(v) for v in inputs]


def _first_tensor(inputs: Any) -> Any:
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        return inputs
    return _first_tensor(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs[0])


class Layer(nn.Module):
    """Base class of lstmtext layers (see the module docstring for the contract).

    Args:
        name: the layer's name; unique automatic names like Keras's when None.
        trainable: whether its weights are updated by training.
        dtype: the weights' dtype name; only "float32" is supported for training.
        input_shape: optional shape without the batch axis, as Keras's ``input_shape``.
    """

    supports_masking: bool = False
    #: True for a layer that takes raw strings (TextVectorization): a model whose first layer says so gets
    #: str/object arrays from ``fit``/``predict`` unchanged (other models refuse them), and only such a
    #: layer may be called on a ``"string"`` symbolic input.
    string_input: bool = False
    #: What the layer accepts, checked when it is called on symbolic tensors (set by ``build``).
    input_spec: InputSpec | None = None

    def __init__(
        self,
        *,
        name: str | None = None,
        trainable: bool = True,
        dtype: str = "float32",
        input_shape: Sequence[int | None] | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
    ) -> None:
        super().__init__()
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
        if dtype not in ("float32", "float64"):
            raise ConfigError(f"{type(self).__name__}: dtype must be 'float32' or 'float64', got {dtype!r}")
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.dtype_name = dtype
        self.built = False
        self._weight_specs: list[tuple[str, Any, Any]] = []  # (attr, regularizer, constraint), Keras order
        self.activity_regularizer: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._activity_losses: list[torch.Tensor] = []
        if batch_input_shape is not None:
            self.batch_input_shape: Shape | None = tuple(batch_input_shape)
        elif input_shape is not None:
            self.batch_input_shape = (None, *tuple(input_shape))
        else:
            self.batch_input_shape = None
        self._inbound_nodes: list[Node] = []  # one per call on symbolic tensors

    # -- building -------------------------------------------------------------------------------
    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype_name == "float64" else torch.float32

    def build(self, input_shape: Shape) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis first). Subclasses extend."""
        self.built = True

    def add_weight(
        self,
        name: str,
        shape: Sequence[int],
        initializer: Callable[..., torch.Tensor],
        *,
        regularizer: Callable[[torch.Tensor], torch.Tensor] | None = None,
        constraint: Callable[[torch.Tensor], torch.Tensor] | None = None,
        trainable: bool = True,
        device: torch.device | str | None = None,
    ) -> nn.Parameter:
        """Create a weight with a Keras initializer and register it under ``name`` in Keras order."""
        _charge_weight_budget(self.name, name, shape, self.torch_dtype)
        with torch.no_grad():
            value = initializer(tuple(shape), dtype=self.torch_dtype)
        if tuple(value.shape) != tuple(shape):
            raise ConfigError(
                f"{self.name}: initializer for {name!r} returned shape {tuple(value.shape)}, expected {tuple(shape)}"
            )
        param = nn.Parameter(value.to(device) if device is not None else value,
                             requires_grad=trainable and self._trainable)
        self.register_parameter(name, param)
        self._weight_specs.append((name, regularizer, constraint))
        return param

    # -- calling --------------------------------------------------------------------------------
    def forward(self, inputs: Any, mask: Any = None, training: bool | None = None, **kwargs: Any) -> Any:
        # ``inputs`` is one tensor, or a list/tuple/dict of tensors for layers that take several (merges,
        # Attention); ``mask`` then has the same structure (None where an input has no mask). Symbolic
        # inputs build the Functional graph instead.
        if is_symbolic(inputs, kwargs):
            return self._call_symbolic(inputs, mask, kwargs)
        inputs = to_tensors(inputs)
        if not self.built:
            self._build_for(inputs)
        if training is None:
            training = self.training
        out = self.call(inputs, mask=mask, training=training, **kwargs)
        if self.activity_regularizer is not None:
            # Keras: one penalty per output tensor (states included), each divided by its batch size.
            outs = out if isinstance(out, (list, tuple)) else [out]
            self._activity_losses = [self.activity_regularizer(o) / o.shape[0] for o in outs
                                     if isinstance(o, torch.Tensor)]
        return out

    # -- symbolic calls (the Functional API) ----------------------------------------------------
    def _call_symbolic(self, inputs: Any, mask: Any, kwargs: dict[str, Any]) -> Any:
        """Build for the symbolic inputs' shapes, check them, and return symbolic outputs recording the call."""
        if mask is not None:
            raise ConfigError(f'Layer "{self.name}": on symbolic inputs the mask comes from the inputs '
                              "(Embedding(mask_zero=True), Masking); do not pass mask=")
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        tensors = [t for t in flatten(inputs) if isinstance(t, KerasTensor)]
        if not tensors:
            raise ConfigError(f'Layer "{self.name}" ({type(self).__name__}): its first argument must hold the '
                              "symbolic inputs; got symbolic tensors only among the keyword arguments")
        for i, t in enumerate(tensors):
            if (t.dtype == "string") != self.string_input:
                want = "strings" if self.string_input else "numbers"
                raise ConfigError(f'Input {i} of layer "{self.name}" ({type(self).__name__}) is incompatible with '
                                  f"the layer: expected {want}, got a symbolic input of dtype {t.dtype!r} "
                                  f"(shape {t.shape})")
        shapes = map_shapes(inputs)
        if not self.built:
            try:
                self.build(shapes)
            except LstmtextError as e:
                raise ConfigError(f'Layer "{self.name}" ({type(self).__name__}) cannot be built for input shape '
                                  f"{shapes}: {e}") from e
            except Exception as e:  # a shape the layer's weights cannot be made for
                raise ConfigError(f'Layer "{self.name}" ({type(self).__name__}) cannot be built for input shape '
                                  f"{shapes}: {type(e).__name__}: {e}") from e
            self.built = True
        if self.input_spec is not None:
            for i, t in enumerate(tensors[:1] if not isinstance(inputs, (list, tuple)) else tensors):
                problem = self.input_spec.problem(t.shape)
                if problem is not None:
                    raise ConfigError(f'Input {i} of layer "{self.name}" is incompatible with the layer: {problem}')
        outputs = symbolic_outputs(self, inputs, kwargs)
        node = Node(self, (inputs,), kwargs, outputs)
        index = len(self._inbound_nodes)
        self._inbound_nodes.append(node)
        for i, t in enumerate(node.output_tensors):
            t.history = (self, index, i)
        return outputs

    def _single_node(self, what: str) -> Node:
        if not self._inbound_nodes:
            raise ConfigError(f'Layer "{self.name}" has never been called on symbolic inputs, so it has no {what}')
        if len(self._inbound_nodes) > 1:
            raise ConfigError(f'Layer "{self.name}" has been called {len(self._inbound_nodes)} times (a shared '
                              f"layer), so its {what} is ambiguous; use the tensors each call returned")
        return self._inbound_nodes[0]

    @property
    def input(self) -> Any:
        """The symbolic input of the layer's one call on symbolic tensors (Keras's ``layer.input``)."""
        return self._single_node("input").args[0]

    @property
    def output(self) -> Any:
        """The symbolic output of the layer's one call on symbolic tensors (Keras's ``layer.output``)."""
        return self._single_node("output").outputs

    def _build_for(self, inputs: Any) -> None:
        self.build(shapes_of(inputs))
        self.built = True
        # Weights are created on the CPU; follow the inputs to their device.
        first = _first_tensor(inputs)
        if isinstance(first, torch.Tensor):
            self.to(first.device)

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False, **kwargs: Any):
        raise NotImplementedError(f"{type(self).__name__}.call")

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """The mask passed on to the next layer: unchanged for masking-aware layers, else dropped."""
        return mask if self.supports_masking else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """Output shape for an input shape (batch axis first); identity by default."""
        return tuple(input_shape)

    # -- weights --------------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for p in self.parameters():
            p.requires_grad_(self._trainable)

    @property
    def weights(self) -> list[nn.Parameter]:
        """This layer's weights (sub-layers' included) in Keras's ``get_weights`` order."""
        own = [getattr(self, n) for n, _, _ in self._weight_specs]
        for child in self.children():
            if isinstance(child, Layer):
                own.extend(child.weights)
        return own

    def get_weights(self) -> list[np.ndarray]:
        """Weights as NumPy arrays in Keras shapes and order."""
        return [w.detach().cpu().numpy().copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray | torch.Tensor]) -> None:
        """Set weights from arrays in Keras shapes and order; the count and every shape must match."""
        own = self.weights
        if len(weights) != len(own):
            raise ConfigError(f"{self.name}.set_weights: expected {len(own)} arrays, got {len(weights)}")
        with torch.no_grad():
            for i, (p, w) in enumerate(zip(own, weights)):
                t = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w)
                if tuple(t.shape) != tuple(p.shape):
                    raise ConfigError(
                        f"{self.name}.set_weights: weight {i} has shape {tuple(t.shape)}, expected {tuple(p.shape)}"
                    )
                p.copy_(t.to(dtype=p.dtype, device=p.device))

    def count_params(self) -> int:
        """Number of scalars in this layer's weights (Keras's count)."""
        if not self.built:
            raise ConfigError(f"{self.name}: count_params() needs a built layer; call it on data or build() first")
        return sum(int(w.numel()) for w in self.weights)

    # -- regularization and constraints ---------------------------------------------------------
    @property
    def losses(self) -> list[torch.Tensor]:
        """Regularization losses: weight penalties now, plus activity penalties of the last call."""
        out: list[torch.Tensor] = []
        for name, reg, _ in self._weight_specs:
            if reg is not None:
                out.append(reg(getattr(self, name)))
        out.extend(self._activity_losses)
        for child in self.children():
            if isinstance(child, Layer):
                out.extend(child.losses)
        return out

    def apply_constraints(self) -> None:
        """Project weights onto their constraints (called after each optimizer step)."""
        with torch.no_grad():
            for name, _, constraint in self._weight_specs:
                if constraint is not None:
                    w = getattr(self, name)
                    w.copy_(constraint(w))
        for child in self.children():
            if isinstance(child, Layer):
                child.apply_constraints()

    # -- config ---------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; ``type(self).from_config(cfg)`` rebuilds the layer."""
        cfg: dict[str, Any] = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype_name}
        if self.batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self.batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


_PLACEHOLDER_SIZES = (2, 3)  # stand-ins for dimensions of unknown size (two, to tell which outputs follow them)
_TORCH_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
                 torch.bfloat16: "bfloat16", torch.int64: "int64", torch.int32: "int32", torch.bool: "bool"}


def map_shapes(structure: Any) -> Any:
    """The shapes of a nest of KerasTensors (a tuple for one tensor, lists for several), for ``build``."""
    if isinstance(structure, KerasTensor):
        return tuple(structure.shape)
    if isinstance(structure, (list, tuple)):
        return [map_shapes(s) for s in structure]
    if isinstance(structure, dict):
        return {k: map_shapes(v) for k, v in structure.items()}
    return structure


def _placeholder(t: KerasTensor, size: int, device: torch.device) -> Any:
    shape = tuple(size if d is None else d for d in t.shape)
    if t.dtype == "string":
        return np.full(shape, "", dtype=object)
    if t.dtype.startswith(("int", "uint")):
        return torch.zeros(shape, dtype=torch.int64, device=device)  # fit/predict give integer data as int64
    if t.dtype == "bool":
        return torch.zeros(shape, dtype=torch.bool, device=device)
    return torch.zeros(shape, dtype=torch.float64 if t.dtype == "float64" else torch.float32, device=device)


def symbolic_outputs(layer: Layer, inputs: Any, kwargs: dict[str, Any]) -> Any:
    """The layer's symbolic outputs for symbolic ``inputs``: shapes, dtypes and masks.

    As Keras on its torch backend, the layer is run on zero-filled stand-ins (inference mode, no gradient):
    twice, with different sizes for the dimensions not yet known, so that an output dimension that follows
    them is ``None``. A layer that cannot take the inputs fails here, when the graph is built.
    """
    runs = []
    stateful = bool(getattr(layer, "stateful", False))
    # Stand-ins live where the layer's weights are (a model moved to CUDA still takes new layers).
    device = next((p.device for p in layer.parameters()), torch.device("cpu"))
    for size in _PLACEHOLDER_SIZES:
        def stand_in(x: Any, size: int = size) -> Any:
            return _placeholder(x, size, device) if isinstance(x, KerasTensor) else x

        args = pack_like(inputs, [stand_in(x) for x in flatten(inputs)])
        kw = {k: pack_like(v, [stand_in(x) for x in flatten(v)]) for k, v in kwargs.items()}
        masks = pack_like(inputs, [None if not isinstance(x, KerasTensor) or x.mask_shape is None else
                                   torch.ones(tuple(size if d is None else d for d in x.mask_shape), dtype=torch.bool,
                                              device=device)
                                   for x in flatten(inputs)])
        if all(m is None for m in flatten(masks)):
            masks = None
        elif not isinstance(inputs, (list, tuple, dict)):
            masks = flatten(masks)[0]
        saved = [s.clone() for s in layer.states] if stateful and getattr(layer, "states", None) else None
        was_training = layer.training
        try:
            with torch.no_grad():
                out = layer.call(args, mask=masks, training=False, **kw)
                out_mask = layer.compute_mask(args, masks)
        except LstmtextError as e:
            raise ConfigError(f'Layer "{layer.name}" ({type(layer).__name__}) cannot take inputs of shape '
                              f"{map_shapes(inputs)}: {e}") from e
        except Exception as e:  # the layer's own arithmetic refusing the shapes or dtypes
            dtypes = [t.dtype for t in flatten(inputs) if isinstance(t, KerasTensor)]
            raise ConfigError(f'Layer "{layer.name}" ({type(layer).__name__}) cannot take inputs of shape '
                              f"{map_shapes(inputs)} and dtype {dtypes if len(dtypes) > 1 else dtypes[0]}: "
                              f"{type(e).__name__}: {e}") from e
        finally:
            layer.train(was_training)
            if saved is not None:
                layer.reset_states(saved)
        runs.append((out, out_mask))
        if stateful:  # a fixed batch size: one run tells everything
            runs.append((out, out_mask))
            break
    (out_a, mask_a), (out_b, mask_b) = runs
    leaves_a, leaves_b = flatten(out_a), flatten(out_b)
    masks_a = flatten(mask_a) if isinstance(mask_a, (list, tuple)) else [mask_a] * len(leaves_a)
    masks_b = flatten(mask_b) if isinstance(mask_b, (list, tuple)) else [mask_b] * len(leaves_b)

    def merge(a: Any, b: Any) -> Shape:
        return tuple(int(x) if x == y else None for x, y in zip(a.shape, b.shape))

    tensors = []
    for a, b, ma, mb in zip(leaves_a, leaves_b, masks_a, masks_b):
        if not isinstance(a, torch.Tensor):
            raise ConfigError(f'Layer "{layer.name}" ({type(layer).__name__}) returned a {type(a).__name__} on '
                              "symbolic inputs; layers must return tensors")
        mask_shape = merge(ma, mb) if isinstance(ma, torch.Tensor) and isinstance(mb, torch.Tensor) else None
        tensors.append(KerasTensor(merge(a, b), _TORCH_DTYPES.get(a.dtype, str(a.dtype)), mask_shape=mask_shape))
    return pack_like(out_a, tensors)


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``, the envelope Keras uses."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(spec: dict[str, Any]) -> Layer:
    """Rebuild a layer from :func:`serialize`'s output; only registered lstmtext classes are allowed."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ConfigError(f"layer spec must be a dict with 'class_name' and 'config', got {type(spec).__name__}")
    name = spec["class_name"]
    cls = _LAYER_REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigError(
            f"unknown layer class {name!r}; lstmtext knows {sorted(_LAYER_REGISTRY)}"
        )
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ConfigError(f"layer {name!r}: 'config' must be an object, got {type(config).__name__}")
    try:
        return cls.from_config(dict(config))
    except LstmtextError:
        raise
    except Exception as e:  # a value of the wrong kind can fail anywhere in a constructor: the config is input
        raise ConfigError(f"layer {name!r}: bad config: {type(e).__name__}: {e}") from e
