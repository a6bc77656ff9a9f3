"""The Keras-style layer base: lazy build from the input shape, masks, weights in Keras order, config.

Every lstmtext layer is a ``torch.nn.Module`` that behaves like a Keras layer:

* weights are created by :meth:`Layer.build` on the first call (or by an explicit ``build``), with
  Keras's names, shapes and initializers, through :meth:`Layer.add_weight`;
* ``layer(x, mask=None, training=None)``: ``training`` defaults to the module's ``self.training``;
* masks are ``(batch, time)`` bool tensors, ``True`` for a real step (Keras's convention);
  :meth:`Layer.compute_mask` says what mask flows on to the next layer;
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

Shape = tuple[int | None, ...]

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
    return torch.as_tensor(np.asarray(inputs))


def shapes_of(inputs: Any) -> Any:
    """``tuple(x.shape)`` for one tensor, the same structure of shape tuples for several."""
    if isinstance(inputs, torch.Tensor):
        return tuple(inputs.shape)
    if isinstance(inputs, dict):
        return {k: shapes_of(v) for k, v in inputs.items()}
    return [shapes_of(v) for v in inputs]


def _first_tensor(inputs: Any) -> torch.Tensor:
    if isinstance(inputs, torch.Tensor):
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
        # Attention); ``mask`` then has the same structure (None where an input has no mask).
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

    def _build_for(self, inputs: Any) -> None:
        self.build(shapes_of(inputs))
        self.built = True
        # Weights are created on the CPU; follow the inputs to their device.
        self.to(_first_tensor(inputs).device)

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
