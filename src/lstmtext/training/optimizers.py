"""Keras's optimizers, formula for formula, on PyTorch tensors.

PyTorch's built-in optimizers differ from Keras's in ways that change results: Adam's epsilon default
(1e-8 vs Keras's 1e-7) and where it is added, RMSprop's epsilon inside the square root in Keras, SGD's
momentum buffer (Keras keeps ``m = momentum * m - lr * g`` and adds it). These classes reproduce the
update of ``keras.optimizers.*`` (as Keras's own torch backend runs it, with ``torch._foreach_*`` ops),
including the base optimizer's order: clip gradients -> decoupled weight decay
(``w *= 1 - weight_decay * lr``) -> update.

An optimizer is created without parameters, like Keras's, and bound to them by :meth:`Optimizer.build`
(``compile`` does it). Its state is a flat dict of tensors (:meth:`Optimizer.state_dict`) plus a
JSON config (:meth:`Optimizer.get_config`), so a checkpoint can store it in safetensors + JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.kernels.training_ops import adam_update_


def _check_positive(owner: str, name: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        need = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"{owner}: {name} must be {need} number, got {value!r}")
    return float(value)


class Optimizer:
    """Base class of Keras-exact optimizers.

    Args:
        learning_rate: step size (a float; :class:`~lstmtext.training.callbacks.ReduceLROnPlateau`
            changes it through the ``learning_rate`` property).
        weight_decay: decoupled weight decay applied before each update (``None``: off).
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
        name: the optimizer's name.
    """

    _slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float = 0.001, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None) -> None:
        owner = type(self).__name__
        self._lr = _check_positive(owner, "learning_rate", learning_rate, allow_zero=True)
        if weight_decay is not None:
            weight_decay = _check_positive(owner, "weight_decay", weight_decay, allow_zero=True)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        set_clips = [k for k, v in clips.items() if v is not None]
        if len(set_clips) > 1:
            raise ConfigError(
                f"{owner}: only one of clipnorm, clipvalue and global_clipnorm can be set, got {set_clips}"
            )
        for k, v in clips.items():
            if v is not None:
                _check_positive(owner, k, v)
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or _snake(owner)
        self.iterations = 0
        self.params: list[torch.nn.Parameter] = []
        self._slots: dict[str, list[torch.Tensor]] = {}
        self.built = False

    # -- learning rate -------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._lr = _check_positive(type(self).__name__, "learning_rate", float(value), allow_zero=True)

    # -- building and state --------------------------------------------------------------------
    def build(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Bind to the trainable parameters (in a fixed order) and create zeroed slot tensors."""
        self.params = [p for p in params if p.requires_grad]
        self._slots = {s: [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.params]
                       for s in self._slot_names}
        self.iterations = 0
        self.built = True

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat ``{"iterations": ..., "<slot>.<i>": ...}`` (``i`` indexes :attr:`params`), safetensors-ready."""
        out = {"iterations": torch.tensor(self.iterations, dtype=torch.int64)}
        for s, tensors in self._slots.items():
            for i, t in enumerate(tensors):
                out[f"{s}.{i}"] = t
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`'s output; the optimizer must be built on same-shaped parameters."""
        if not self.built:
            raise ConfigError(f"{self.name}: build the optimizer on the model's parameters before loading its state")
        expected = set(self.state_dict())
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ConfigError(f"{self.name}: optimizer state does not match: missing {missing}, unexpected {extra}")
        with torch.no_grad():
            for s, tensors in self._slots.items():
                for i, t in enumerate(tensors):
                    v = state[f"{s}.{i}"]
                    if tuple(v.shape) != tuple(t.shape):
                        raise ConfigError(
                            f"{self.name}: state {s}.{i} has shape {tuple(v.shape)}, expected {tuple(t.shape)}"
                        )
                    t.copy_(v.to(device=t.device, dtype=t.dtype))
        self.iterations = int(state["iterations"])

    def variables_count(self) -> int:
        """Scalars of optimizer state as Keras's summary counts them ("Optimizer params": the slots plus
        the iteration counter and the learning rate)."""
        return 2 + sum(t.numel() for ts in self._slots.values() for t in ts) if self.built else 0

    # -- stepping ------------------------------------------------------------------------------
    def _clip(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.clipnorm:
            out = []
            for g in grads:
                l2 = g.square().sum().sqrt()
                out.append(g * self.clipnorm / torch.clamp(l2, min=self.clipnorm))
            return out
        if self.global_clipnorm:
            norm = torch.stack([g.square().sum() for g in grads]).sum().sqrt()
            # Keras: clip_norm * min(1/norm, 1/clip_norm); a non-finite norm makes the scale NaN.
            scale = self.global_clipnorm * torch.minimum(1.0 / norm, torch.tensor(1.0 / self.global_clipnorm))
            scale = scale + (norm - norm)
            return torch._foreach_mul(grads, scale)
        if self.clipvalue:
            return [g.clamp(-self.clipvalue, self.clipvalue) for g in grads]
        return grads

    @torch.no_grad()
    def step(self) -> None:
        """Apply one update from the parameters' ``.grad`` (parameters without a gradient are skipped)."""
        if not self.built:
            raise ConfigError(f"{self.name}: the optimizer is not built; call build(model.parameters()) first")
        idx = [i for i, p in enumerate(self.params) if p.grad is not None]
        if idx:
            params = [self.params[i] for i in idx]
            grads = self._clip([p.grad for p in params])  # type: ignore[misc]
            if self.weight_decay:
                torch._foreach_mul_(params, 1.0 - self.weight_decay * self._lr)
            slots = {s: [ts[i] for i in idx] for s, ts in self._slots.items()}
            self._update(params, grads, slots, self._lr)
        self.iterations += 1

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor], slots: dict[str, list[torch.Tensor]],
                lr: float) -> None:
        raise NotImplementedError

    # -- config --------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self._lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, as ``keras.optimizers.SGD``.

    Keras's update: ``m = momentum * m - lr * g``; ``w += m`` (Nesterov: ``w += momentum * m - lr * g``).

    Args:
        learning_rate: 0.01 (Keras's default).
        momentum: in ``[0, 1]``.
        nesterov: use Nesterov momentum.
        **kwargs: see :class:`Optimizer`.

    >>> SGD(learning_rate=0.1, momentum=0.9).get_config()["momentum"]
    0.9
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any
                 ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"SGD: momentum must be a number in [0, 1], got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self._slot_names = ("momentums",) if self.momentum else ()

    def _update(self, params, grads, slots, lr):
        if not self.momentum:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        m = slots["momentums"]
        torch._foreach_mul_(m, self.momentum)
        torch._foreach_add_(m, grads, alpha=-lr)
        if self.nesterov:
            torch._foreach_add_(params, grads, alpha=-lr)
            torch._foreach_add_(params, m, alpha=self.momentum)
        else:
            torch._foreach_add_(params, m)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam, as ``keras.optimizers.Adam`` (epsilon 1e-7, added *after* the square root, bias correction
    folded into the step size: ``alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)``; ``w -= alpha * m / (sqrt(v) + eps)``).

    Args:
        learning_rate: 0.001.
        beta_1: 0.9, decay of the first moment.
        beta_2: 0.999, decay of the second moment.
        epsilon: 1e-7 (PyTorch's default is 1e-8).
        amsgrad: use the running maximum of the second moment.
        **kwargs: see :class:`Optimizer`.
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        for n, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not isinstance(b, (int, float)) or not 0.0 <= b < 1.0:
                raise ConfigError(f"{type(self).__name__}: {n} must be a number in [0, 1), got {b!r}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = _check_positive(type(self).__name__, "epsilon", epsilon, allow_zero=True)
        self.amsgrad = bool(amsgrad)
        self._slot_names = ("momentums", "velocities", "velocity_hats") if amsgrad else ("momentums", "velocities")

    def _update(self, params, grads, slots, lr):
        t = self.iterations + 1
        # Keras computes this in float32 tensors; the float64 value differs by < 1 ulp of float32.
        alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m, v = slots["momentums"], slots["velocities"]
        if not self.amsgrad and adam_update_(params, grads, m, v, alpha, self.beta_1, self.beta_2, self.epsilon):
            return  # CPU float32: the same formula in one compiled pass per parameter (lstmtext.kernels)
        torch._foreach_mul_(m, self.beta_1)
        torch._foreach_add_(m, grads, alpha=1.0 - self.beta_1)
        torch._foreach_mul_(v, self.beta_2)
        torch._foreach_add_(v, torch._foreach_mul(grads, grads), alpha=1.0 - self.beta_2)
        if self.amsgrad:
            v_hat = slots["velocity_hats"]
            torch._foreach_maximum_(v_hat, v)
            v = v_hat
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, self.epsilon)
        torch._foreach_add_(params, torch._foreach_div(torch._foreach_mul(m, alpha), denom), alpha=-1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``keras.optimizers.AdamW`` (``weight_decay=0.004`` by default).

    Args:
        learning_rate, beta_1, beta_2, epsilon, amsgrad: as :class:`Adam`.
        weight_decay: 0.004; ``w *= 1 - weight_decay * lr`` before each Adam update.
    """

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> None:
        if weight_decay is None:
            raise ConfigError("AdamW: weight_decay must be a float, got None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """RMSprop, as ``keras.optimizers.RMSprop``: epsilon is added *inside* the square root
    (``w -= lr * g / sqrt(v + eps)``), unlike ``torch.optim.RMSprop``.

    Args:
        learning_rate: 0.001.
        rho: 0.9, decay of the mean square.
        momentum: 0.0.
        epsilon: 1e-7.
        centered: normalise by the variance rather than the second moment.
        **kwargs: see :class:`Optimizer`.
    """

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not isinstance(rho, (int, float)) or not 0.0 <= rho < 1.0:
            raise ConfigError(f"RMSprop: rho must be a number in [0, 1), got {rho!r}")
        if not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"RMSprop: momentum must be a number in [0, 1], got {momentum!r}")
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon = _check_positive("RMSprop", "epsilon", epsilon, allow_zero=True)
        self.centered = bool(centered)
        names = ["velocities"]
        if self.momentum > 0:
            names.append("momentums")
        if self.centered:
            names.append("average_gradients")
        self._slot_names = tuple(names)

    def _update(self, params, grads, slots, lr):
        vel = slots["velocities"]
        torch._foreach_mul_(vel, self.rho)
        torch._foreach_add_(vel, torch._foreach_mul(grads, grads), alpha=1.0 - self.rho)
        denom = torch._foreach_add(vel, self.epsilon)
        if self.centered:
            avg = slots["average_gradients"]
            torch._foreach_mul_(avg, self.rho)
            torch._foreach_add_(avg, grads, alpha=1.0 - self.rho)
            torch._foreach_add_(denom, torch._foreach_mul(avg, avg), alpha=-1.0)
        torch._foreach_sqrt_(denom)
        inc = torch._foreach_div(torch._foreach_mul(grads, lr), denom)
        if self.momentum > 0:
            mom = slots["momentums"]
            torch._foreach_mul_(mom, self.momentum)
            torch._foreach_add_(mom, inc)
            torch._foreach_add_(params, mom, alpha=-1.0)
        else:
            torch._foreach_add_(params, inc, alpha=-1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


OPTIMIZER_CLASSES: dict[str, type[Optimizer]] = {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop)}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a Keras name (``"adam"``, ``"Adam"``, ``"sgd"``, ``"rmsprop"``, ``"adamw"``), a
    ``{"class_name", "config"}`` dict, or an :class:`Optimizer` (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, torch.optim.Optimizer):
        raise ConfigError(
            "optimizer: a torch.optim optimizer cannot be used (its updates differ from Keras's); pass "
            f"an lstmtext optimizer such as lstmtext.optimizers.Adam(), got {type(identifier).__name__}"
        )
    if isinstance(identifier, str):
        by_lower = {k.lower(): v for k, v in OPTIMIZER_CLASSES.items()}
        cls = by_lower.get(identifier.lower())
        if cls is None:
            raise ConfigError(
                f"optimizer: unknown optimizer {identifier!r}; expected one of {sorted(by_lower)} or an Optimizer"
            )
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = OPTIMIZER_CLASSES.get(identifier["class_name"])
        if cls is None:
            raise ConfigError(f"optimizer: unknown optimizer class {identifier['class_name']!r}")
        return cls.from_config(dict(identifier.get("config", {})))
    raise ConfigError(f"optimizer: expected an optimizer name or Optimizer object, got {identifier!r}")


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name", "config"}`` of an optimizer."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}
