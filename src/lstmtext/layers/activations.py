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
    return F.gelu(x)  # Keras 3's default approximate=False


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, dim=-1)


def tanh_shrink(x: torch.Tensor) -> torch.Tensor:
    return x - torch.tanh(x)


def hard_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.hardtanh(x, -1.0, 1.0)


def soft_shrink(x: torch.Tensor) -> torch.Tensor:
    return F.softshrink(x, 0.5)


def hard_shrink(x: torch.Tensor) -> torch.Tensor:
    return F.hardshrink(x, 0.5)


def squareplus(x: torch.Tensor) -> torch.Tensor:
    return (x + torch.sqrt(x * x + 4.0)) / 2  # Keras's default b=4


def sparse_plus(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= -1, torch.zeros_like(x), torch.where(x < 1, 0.25 * (x + 1) ** 2, x))


def sparse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(0.5 * (x + 1), 0.0, 1.0)


def glu(x: torch.Tensor) -> torch.Tensor:
    return F.glu(x, dim=-1)


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
    "silu": F.silu,
    "swish": F.silu,
    "gelu": gelu,
    "exponential": exponential,
    "leaky_relu": leaky_relu,
    "relu6": F.relu6,
    "mish": F.mish,
    "celu": F.celu,
    "hard_silu": F.hardswish,
    "hard_swish": F.hardswish,
    "log_sigmoid": F.logsigmoid,
    "log_softmax": log_softmax,
    "tanh_shrink": tanh_shrink,
    "hard_tanh": hard_tanh,
    "soft_shrink": soft_shrink,
    "hard_shrink": hard_shrink,
    "squareplus": squareplus,
    "sparse_plus": sparse_plus,
    "sparse_sigmoid": sparse_sigmoid,
    "glu": glu,
}
# The first name wins for aliases (swish/silu, hard_silu/hard_swish), as Keras serializes them.
_NAMES: dict[int, str] = {}
for _name, _fn in _ACTIVATIONS.items():
    _NAMES.setdefault(id(_fn), _name)


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
