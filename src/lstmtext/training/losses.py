"""Keras losses on PyTorch: the same formulas, clipping, shape rules and reduction.

A loss object is called as ``loss(y_true, y_pred, sample_weight=None)`` and returns a scalar tensor.
Like Keras, the per-sample values (:meth:`Loss.call`, the mean over the last axis) are multiplied by
the sample weights and reduced with ``"sum_over_batch_size"``: the *sum* divided by the *number of
samples* (not by the sum of the weights). Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` before
the log, as Keras does when ``from_logits=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lstmtext.errors import ConfigError, DataError

EPSILON = 1e-7  # keras.backend.epsilon()
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def squeeze_or_expand_to_same_rank(x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras's rule for ``(B,)`` labels against ``(B, 1)`` predictions: the rank-1 side gains an axis."""
    r1, r2 = x1.dim(), x2.dim()
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def _check_same_shape(fn: str, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
    if y_true.shape != y_pred.shape:
        raise DataError(
            f"{fn}: y (targets) and the model's output must have the same shape, "
            f"got y {tuple(y_true.shape)} and output {tuple(y_pred.shape)}"
        )


def binary_crossentropy(y_true: torch.Tensor, y_pred: torch.Tensor, from_logits: bool = False,
                        label_smoothing: float = 0.0, axis: int = -1) -> torch.Tensor:
    """Per-sample binary cross-entropy, the mean over ``axis`` (Keras's ``binary_crossentropy``)."""
    y_true = y_true.to(y_pred.dtype)
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        values = F.binary_cross_entropy(torch.clip(y_pred, EPSILON, 1.0 - EPSILON), y_true, reduction="none")
    return values.mean(dim=axis)


def categorical_crossentropy(y_true: torch.Tensor, y_pred: torch.Tensor, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int = -1) -> torch.Tensor:
    """Per-sample cross-entropy against one-hot (or soft) targets of the output's shape."""
    y_true = y_true.to(y_pred.dtype)
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        log_prob = F.log_softmax(y_pred, dim=axis)
    else:
        # Keras renormalises the probabilities before clipping.
        p = y_pred / y_pred.sum(dim=axis, keepdim=True)
        log_prob = torch.log(torch.clip(p, EPSILON, 1.0 - EPSILON))
    return -(y_true * log_prob).sum(dim=axis)


def sparse_categorical_crossentropy(y_true: torch.Tensor, y_pred: torch.Tensor, from_logits: bool = False,
                                    ignore_class: int | None = None, axis: int = -1) -> torch.Tensor:
    """Per-sample cross-entropy against integer class ids (``y_pred`` has the class axis last)."""
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    y_true = y_true.long()
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise DataError(
            "sparse_categorical_crossentropy: y must hold one class id per sample, shape "
            f"{tuple(y_pred.shape[:-1])}, got {tuple(y_true.shape)} for an output of shape {tuple(y_pred.shape)}"
        )
    valid = None
    if ignore_class is not None:
        valid = y_true != ignore_class
        y_true = torch.where(valid, y_true, torch.zeros_like(y_true))
    logits = y_pred.movedim(-1, 1) if y_pred.dim() > 2 else y_pred  # torch wants classes on axis 1
    if from_logits:
        values = F.cross_entropy(logits, y_true, reduction="none")
    else:
        p = logits / logits.sum(dim=1, keepdim=True)
        values = F.nll_loss(torch.log(torch.clip(p, EPSILON, 1.0 - EPSILON)), y_true, reduction="none")
    if valid is not None:
        values = values * valid.to(values.dtype)
    return values


def mean_squared_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of squared differences over the last axis."""
    y_true = y_true.to(y_pred.dtype)
    _check_same_shape("mean_squared_error", y_true, y_pred)
    return (y_pred - y_true).square().mean(dim=-1)


def mean_absolute_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of absolute differences over the last axis."""
    y_true = y_true.to(y_pred.dtype)
    _check_same_shape("mean_absolute_error", y_true, y_pred)
    return (y_pred - y_true).abs().mean(dim=-1)


def reduce_weighted_values(values: torch.Tensor, sample_weight: torch.Tensor | None, reduction: str | None
                           ) -> torch.Tensor:
    """Keras's ``reduce_weighted_values``: weight, then sum and divide by the number of values."""
    if sample_weight is not None:
        sample_weight = sample_weight.to(values.dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * sample_weight
    if reduction in (None, "none") or values.dim() == 0:
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = sample_weight.sum()
        # divide_no_nan: all-zero weights give 0, not NaN.
        return torch.where(divisor != 0, total / torch.where(divisor != 0, divisor, 1.0), torch.zeros_like(total))
    n = values.numel()
    return total / n if n else total


class Loss:
    """Base class: ``__call__`` weights and reduces the per-sample values of :meth:`call`.

    Args:
        name: the loss's name.
        reduction: ``"sum_over_batch_size"`` (default, Keras's), ``"sum"``, ``"mean_with_sample_weight"``
            or ``"none"``.
    """

    default_name = "loss"

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size") -> None:
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"{type(self).__name__}: reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")
        self.name = name or self.default_name
        self.reduction = "sum_over_batch_size" if reduction == "mean" else reduction

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: torch.Tensor, sample_weight: Any = None) -> torch.Tensor:
        y_pred = torch.as_tensor(y_pred)
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        if sample_weight is not None:
            sample_weight = torch.as_tensor(sample_weight, device=y_pred.device)
        return reduce_weighted_values(self.call(y_true, y_pred), sample_weight, self.reduction)

    def check_targets(self, y: np.ndarray, output_shape: tuple[int | None, ...]) -> None:
        """Raise :class:`DataError` (naming ``y``) if the targets cannot be used with this loss."""

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class BinaryCrossentropy(Loss):
    """Cross-entropy for 0/1 labels against one probability (or logit) per output unit.

    Args:
        from_logits: ``y_pred`` are logits rather than sigmoid probabilities.
        label_smoothing: squeeze labels towards 0.5 by this fraction.
        axis: the axis averaged per sample.
        reduction, name: see :class:`Loss`.

    >>> BinaryCrossentropy()(torch.tensor([1.0, 0.0]), torch.tensor([[0.9], [0.2]]))
    tensor(0.1643)
    """

    default_name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None) -> None:
        super().__init__(name, reduction)
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), float(label_smoothing), axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)

    def check_targets(self, y: np.ndarray, output_shape: tuple[int | None, ...]) -> None:
        if y.size and (np.nanmin(y) < 0 or np.nanmax(y) > 1 or np.isnan(y).any()):
            raise DataError(
                f"y: {self.name} needs labels in [0, 1], got values from {np.nanmin(y)} to {np.nanmax(y)}"
                + (" and NaN" if np.isnan(y).any() else "")
            )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot targets ``(batch, classes)`` against softmax probabilities or logits.

    Args:
        from_logits: ``y_pred`` are logits.
        label_smoothing: mix the one-hot targets with the uniform distribution.
        axis: the class axis.
        reduction, name: see :class:`Loss`.
    """

    default_name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None) -> None:
        super().__init__(name, reduction)
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), float(label_smoothing), axis

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)

    def check_targets(self, y: np.ndarray, output_shape: tuple[int | None, ...]) -> None:
        # an axis the model leaves open (the time axis of a sequence output) takes any size
        if len(y.shape) != len(output_shape) or any(
                o is not None and o != d for o, d in zip(output_shape[1:], y.shape[1:])):
            want = ", ".join(["n", *("t" if d is None else str(d) for d in output_shape[1:])])
            raise DataError(
                f"y: {self.name} needs one-hot targets of shape ({want}) like the model's output "
                f"{tuple(output_shape)}, got y of shape {tuple(y.shape)} (use sparse_categorical_crossentropy "
                "for integer class ids)"
            )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy for integer class ids ``(batch,)`` against ``(batch, classes)`` probabilities or logits.

    Args:
        from_logits: ``y_pred`` are logits.
        ignore_class: a class id whose samples contribute zero loss.
        reduction, name: see :class:`Loss`.
    """

    default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None) -> None:
        super().__init__(name, reduction)
        self.from_logits, self.ignore_class = bool(from_logits), ignore_class

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits, self.ignore_class)

    def check_targets(self, y: np.ndarray, output_shape: tuple[int | None, ...]) -> None:
        classes = output_shape[-1]
        ids = y if self.ignore_class is None else y[y != self.ignore_class]
        if ids.size == 0:
            return
        if not np.all(np.isfinite(ids)) or not np.all(np.equal(np.mod(ids, 1), 0)):
            raise DataError(f"y: {self.name} needs integer class ids, got non-integer values")
        lo, hi = ids.min(), ids.max()
        if lo < 0 or (classes is not None and hi >= classes):
            raise DataError(
                f"y: {self.name} needs class ids in [0, {classes}) for a model with {classes} outputs, "
                f"got ids from {int(lo)} to {int(hi)}"
            )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class}


class MeanSquaredError(Loss):
    """Mean of squared errors over the last axis, per sample."""

    default_name = "mean_squared_error"

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return mean_squared_error(y_true, y_pred)


class MeanAbsoluteError(Loss):
    """Mean of absolute errors over the last axis, per sample."""

    default_name = "mean_absolute_error"

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return mean_absolute_error(y_true, y_pred)


LOSS_CLASSES: dict[str, type[Loss]] = {
    c.__name__: c for c in (BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
                            MeanSquaredError, MeanAbsoluteError)
}
_ALIASES: dict[str, type[Loss]] = {
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}


class _FunctionLoss(Loss):
    """Wraps a user function ``fn(y_true, y_pred) -> per-sample values`` as a Keras loss."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__(getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred)


def get(identifier: Any) -> Loss:
    """A loss from a Keras name (``"binary_crossentropy"``, ``"BinaryCrossentropy"``, ``"mse"`` ...),
    a ``{"class_name", "config"}`` dict, a :class:`Loss`, or a function of ``(y_true, y_pred)``."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or LOSS_CLASSES.get(identifier)
        if cls is None:
            raise ConfigError(
                f"loss: unknown loss {identifier!r}; expected one of {sorted({*_ALIASES, *LOSS_CLASSES})}, "
                "a Loss object or a function (y_true, y_pred)"
            )
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = LOSS_CLASSES.get(identifier["class_name"])
        if cls is None:
            raise ConfigError(f"loss: unknown loss class {identifier['class_name']!r}; known: {sorted(LOSS_CLASSES)}")
        return cls.from_config(dict(identifier.get("config", {})))
    if callable(identifier):
        return _FunctionLoss(identifier)
    raise ConfigError(f"loss: expected a loss name, Loss object or function, got {identifier!r}")


def serialize(loss: Loss) -> dict[str, Any]:
    """``{"class_name", "config"}`` of a built-in loss (functions cannot be serialized)."""
    if type(loss).__name__ not in LOSS_CLASSES:
        raise ConfigError(f"loss: {loss!r} is a custom function and cannot be written to a config")
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
