"""Keras initializers, by Keras's string names, as configs, or as objects.

They draw from PyTorch's global generator (seeded by :func:`lstmtext.utils.set_random_seed`) unless
built with a ``seed``; the distributions are Keras's (fan in/out from the last two axes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from lstmtext.errors import ConfigError

Shape = tuple[int, ...]


def _fans(shape: Shape) -> tuple[float, float]:
    # Keras's compute_fans: (in, out) for a matrix; receptive field folded in for higher ranks.
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


class Initializer:
    """Callable ``(shape, dtype) -> Tensor`` with a JSON config."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def _generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        g = torch.Generator()
        g.manual_seed(int(self.seed))
        return g

    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed} if self.seed is not None else {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)


class Zeros(Initializer):
    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {}


class Ones(Initializer):
    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.ones(shape, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {}


class Constant(Initializer):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = float(value)

    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.full(shape, self.value, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        t = torch.empty(shape, dtype=dtype)
        return t.uniform_(self.minval, self.maxval, generator=self._generator())

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype).normal_(self.mean, self.stddev, generator=self._generator())

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(RandomNormal):
    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        t = torch.empty(shape, dtype=dtype)
        torch.nn.init.trunc_normal_(t, self.mean, self.stddev, self.mean - 2 * self.stddev,
                                    self.mean + 2 * self.stddev, generator=self._generator())
        return t


class VarianceScaling(Initializer):
    """Keras's VarianceScaling (the glorot/he/lecun family)."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None) -> None:
        super().__init__(seed)
        if scale <= 0:
            raise ConfigError(f"VarianceScaling: scale must be positive, got {scale!r}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ConfigError(f"VarianceScaling: mode must be fan_in, fan_out or fan_avg, got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ConfigError(
                "VarianceScaling: distribution must be truncated_normal, untruncated_normal or uniform, "
                f"got {distribution!r}"
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        g = self._generator()
        t = torch.empty(shape, dtype=dtype)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            return t.uniform_(-limit, limit, generator=g)
        if self.distribution == "untruncated_normal":
            return t.normal_(0.0, math.sqrt(scale), generator=g)
        std = math.sqrt(scale) / 0.87962566103423978  # std of a unit normal truncated at +-2
        torch.nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std, generator=g)
        return t

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


class GlorotUniform(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def get_config(self) -> dict[str, Any]:
        return Initializer.get_config(self)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)

    def get_config(self) -> dict[str, Any]:
        return Initializer.get_config(self)


class HeUniform(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(2.0, "fan_in", "uniform", seed)

    def get_config(self) -> dict[str, Any]:
        return Initializer.get_config(self)


class HeNormal(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(2.0, "fan_in", "truncated_normal", seed)

    def get_config(self) -> dict[str, Any]:
        return Initializer.get_config(self)


class LecunUniform(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_in", "uniform", seed)

    def get_config(self) -> dict[str, Any]:
        return Initializer.get_config(self)


class LecunNormal(VarianceScaling):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_in", "truncated_normal", seed)

    def get_config(self) -> dict[str, Any]:
        return Initializer.get_config(self)


class Orthogonal(Initializer):
    """Keras's Orthogonal: QR of a normal matrix, sign-corrected, transposed when wide."""

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if len(shape) < 2:
            raise ConfigError(f"Orthogonal: needs a shape of rank >= 2, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        flat = (max(rows, cols), min(rows, cols))
        a = torch.empty(flat, dtype=torch.float64).normal_(0.0, 1.0, generator=self._generator())
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).to(dtype)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, **super().get_config()}


class Identity(Initializer):
    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = float(gain)

    def __call__(self, shape: Shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if len(shape) != 2:
            raise ConfigError(f"Identity: needs a 2-D shape, got {shape}")
        return self.gain * torch.eye(*shape, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


_ALIASES: dict[str, type[Initializer]] = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_uniform": RandomUniform, "uniform": RandomUniform,
    "random_normal": RandomNormal, "normal": RandomNormal, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal, "identity": Identity,
}
_BY_CLASS = {cls.__name__: cls for cls in _ALIASES.values()}


def get(identifier: str | dict[str, Any] | Initializer | Callable[..., torch.Tensor] | None) -> Callable[..., Any]:
    """Resolve a Keras initializer identifier: a name, a ``{"class_name", "config"}`` dict, or a callable."""
    if identifier is None:
        raise ConfigError("initializer must not be None")
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _ALIASES.get(identifier.lower()) or _BY_CLASS.get(identifier)
        if cls is None:
            raise ConfigError(f"unknown initializer {identifier!r}; expected one of {sorted(_ALIASES)}")
        return cls()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        cls = _BY_CLASS.get(name) or _ALIASES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ConfigError(f"unknown initializer class {name!r}; expected one of {sorted(_BY_CLASS)}")
        return cls.from_config(dict(identifier.get("config", {})))
    if callable(identifier):
        return identifier
    raise ConfigError(f"initializer must be a name, a config dict or a callable, got {identifier!r}")


def serialize(init: Any) -> Any:
    """JSON form of an initializer (``{"class_name", "config"}``); raises for plain callables."""
    if isinstance(init, Initializer):
        return {"class_name": type(init).__name__, "config": init.get_config()}
    raise ConfigError(f"initializer {init!r} is a plain callable and cannot be saved in a config")
