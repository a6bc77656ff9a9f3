"""Keras activations by their string names (or any callable)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lstmtext.errors import ConfigError

Activation = Callable[[torch.Tensor], torch.Tensor]


def linear(x: torch.Tensor) -> torch.Tensor:
    return x


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    # Keras 3: relu6(x + 3) / 6
    return torch.clamp(x / 6.0 + 0.5, 0.0, 1.0)


def softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def exponential(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x)


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)  # Keras's default negative_slope


def gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")  # Keras's default approximate=True


_ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "linear": linear,
    "softmax": softmax,
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "hard_sigmoid": hard_sigmoid,
    "swish": F.silu,
    "silu": F.silu,
    "gelu": gelu,
    "exponential": exponential,
    "leaky_relu": leaky_relu,
    "relu6": F.relu6,
    "mish": F.mish,
}
_NAMES = {id(fn): name for name, fn in _ACTIVATIONS.items()}


def get(identifier: str | Activation | None) -> Activation:
    """Resolve an activation: a Keras name, None (linear) or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _ACTIVATIONS.get(identifier)
        if fn is None:
            raise ConfigError(f"unknown activation {identifier!r}; expected one of {sorted(_ACTIVATIONS)}")
        return fn
    if callable(identifier):
        return identifier
    raise ConfigError(f"activation must be a name or a callable, got {identifier!r}")


def serialize(fn: Activation) -> str:
    """The Keras name of an activation; raises for callables that have none (they cannot be saved)."""
    name = _NAMES.get(id(fn))
    if name is None:
        raise ConfigError(f"activation {fn!r} has no Keras name and cannot be saved in a config")
    return name


def serialize_or_repr(fn: Activation) -> str:
    """The Keras name of an activation if it has one, else its repr (for error messages)."""
    return _NAMES.get(id(fn)) or repr(fn)
