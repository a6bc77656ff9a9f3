"""Keras weight constraints: projections applied to a weight after each optimizer step."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError

_EPSILON = 1e-7  # keras.backend.epsilon()


class Constraint:
    """Callable ``weight -> projected weight`` with a JSON config."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        return cls(**config)


def _norms(w: torch.Tensor, axis: int | list[int]) -> torch.Tensor:
    dims = axis if isinstance(axis, (list, tuple)) else [axis]
    return torch.sqrt(torch.sum(w.square(), dim=dims, keepdim=True))


class MaxNorm(Constraint):
    def __init__(self, max_value: float = 2.0, axis: int | list[int] = 0) -> None:
        self.max_value, self.axis = float(max_value), axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = torch.clamp(norms, 0.0, self.max_value)
        return w * (desired / (_EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w * (w >= 0.0).to(w.dtype)


class UnitNorm(Constraint):
    def __init__(self, axis: int | list[int] = 0) -> None:
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w / (_EPSILON + _norms(w, self.axis))

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: int | list[int] = 0) -> None:
        self.min_value, self.max_value, self.rate, self.axis = float(min_value), float(max_value), float(rate), axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        norms = _norms(w, self.axis)
        desired = self.rate * torch.clamp(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (_EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


_NAMES: dict[str, type[Constraint]] = {
    "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm,
}
_CLASSES: dict[str, type[Constraint]] = {c.__name__: c for c in (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}


def get(identifier: Any) -> Any:
    """Resolve a constraint: a Keras name, a ``{"class_name", "config"}`` dict or a callable."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ConfigError(f"unknown constraint {identifier!r}; expected one of {sorted(_NAMES)}")
        return cls()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name", ""))
        if cls is None:
            raise ConfigError(f"unknown constraint class {identifier.get('class_name')!r}; "
                              f"expected one of {sorted(_CLASSES)}")
        return cls.from_config(dict(identifier.get("config", {})))
    if callable(identifier):
        return identifier
    raise ConfigError(f"constraint must be a name, a config dict or a callable, got {identifier!r}")
