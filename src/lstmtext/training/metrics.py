"""Keras metrics on PyTorch: stateful, accumulated over the whole epoch, with Keras's formulas.

Every metric keeps its state as *sums* in tensors on the data's device (``total``/``count``, or
confusion-matrix counts), so an update never synchronises with the host, and distributed training can
all-reduce :attr:`Metric.variables` with ``SUM`` before :meth:`Metric.result`.

>>> m = BinaryAccuracy()
>>> m.update_state(torch.tensor([1, 0]), torch.tensor([[0.8], [0.7]]))
>>> float(m.result())
0.5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.training import losses as losses_mod
from lstmtext.training.losses import squeeze_or_expand_to_same_rank


def _divide_no_nan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.zeros_like(a))


class Metric:
    """Base class: ``update_state(y_true, y_pred, sample_weight=None)``, ``result()``, ``reset_state()``.

    Args:
        name: the key under which the value is logged (``"accuracy"``, ``"val_accuracy"`` ...).
    """

    default_name = "metric"
    #: "up" when larger is better (accuracy, AUC), "down" when smaller is (errors); monitors use it.
    direction: str | None = None

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.default_name
        self._state: dict[str, torch.Tensor] = {}

    # State tensors are created on the first update, on the device of the predictions.
    def _zeros(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {"total": torch.zeros((), device=device), "count": torch.zeros((), device=device)}

    def _states(self, device: torch.device) -> dict[str, torch.Tensor]:
        if not self._state or next(iter(self._state.values())).device != device:
            self._state = self._zeros(device)
        return self._state

    def build_state(self, device: torch.device | str) -> None:
        """Create (zeroed) state tensors on ``device`` if they do not exist there yet."""
        self._states(torch.device(device))

    @property
    def variables(self) -> list[torch.Tensor]:
        """The state tensors (all sums: safe to all-reduce with ``SUM``)."""
        return list(self._state.values())

    def reset_state(self) -> None:
        for v in self._state.values():
            v.zero_()

    def update_state(self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None = None
                     ) -> None:
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class Mean(Metric):
    """Weighted mean of the values passed to ``update_state(values, sample_weight=None)``.

    Values of rank > 1 are first averaged per sample, like Keras's ``reduce_to_samplewise_values``.
    """

    default_name = "mean"

    def update_state(self, values: torch.Tensor, sample_weight: Any = None) -> None:  # type: ignore[override]
        values = torch.as_tensor(values)
        st = self._states(values.device)
        values = values.to(torch.float32)
        if sample_weight is not None:
            sw = torch.as_tensor(sample_weight, device=values.device).to(torch.float32)
            values, sw = squeeze_or_expand_to_same_rank(values, sw)
            if values.dim() > sw.dim():
                values = values.mean(dim=tuple(range(sw.dim(), values.dim())))
            sw = torch.broadcast_to(sw, values.shape)
            values = values * sw
            if sw.dim() > 1:
                sw = sw.mean(dim=tuple(range(1, sw.dim())))
            st["count"].add_(sw.sum())
        else:
            st["count"].add_(values.shape[0] if values.dim() >= 1 else 1)
        if values.dim() > 1:
            values = values.mean(dim=tuple(range(1, values.dim())))
        st["total"].add_(values.sum())

    def result(self) -> torch.Tensor:
        if not self._state:
            return torch.zeros(())
        return _divide_no_nan(self._state["total"], self._state["count"])


class MeanMetricWrapper(Mean):
    """The epoch mean of a per-sample function ``fn(y_true, y_pred)`` (Keras's ``MeanMetricWrapper``)."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name or getattr(fn, "__name__", "mean"))
        self._fn, self._fn_kwargs = fn, kwargs

    def update_state(self, y_true: Any, y_pred: torch.Tensor, sample_weight: Any = None) -> None:  # type: ignore[override]
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self._fn_kwargs}


def binary_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """1.0 where ``(y_pred > threshold)`` equals the label, else 0.0."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == (y_pred > threshold).to(y_true.dtype)).to(torch.float32)


def categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """1.0 where the arg-max of the prediction is the arg-max of the one-hot target."""
    return (y_true.argmax(dim=-1) == y_pred.argmax(dim=-1)).to(torch.float32)


def sparse_categorical_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """1.0 where the arg-max of the prediction is the integer label."""
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return (y_true.to(torch.int64) == y_pred.argmax(dim=-1)).to(torch.float32)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches 0/1 labels.

    Args:
        name: logged name (``"binary_accuracy"``).
        threshold: the decision threshold on probabilities (0.5).
    """

    direction = "up"

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the predicted class (arg-max) matches a one-hot target."""

    direction = "up"

    def __init__(self, name: str = "categorical_accuracy") -> None:
        super().__init__(categorical_accuracy, name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the predicted class (arg-max) matches an integer label."""

    direction = "up"

    def __init__(self, name: str = "sparse_categorical_accuracy") -> None:
        super().__init__(sparse_categorical_accuracy, name)


class _ConfusionMetric(Metric):
    """Precision/recall at fixed thresholds: ``y_pred > t`` counts as positive (Keras's rule)."""

    direction = "up"

    def __init__(self, thresholds: float | Sequence[float] | None = None, name: str | None = None) -> None:
        super().__init__(name)
        if thresholds is None:
            thresholds = 0.5
        self._single = isinstance(thresholds, (int, float))
        values = [float(thresholds)] if self._single else [float(t) for t in thresholds]  # type: ignore[union-attr]
        if not values or any(not 0.0 <= t <= 1.0 for t in values):
            raise ConfigError(f"{type(self).__name__}: thresholds must lie in [0, 1], got {thresholds!r}")
        self.thresholds = values
        self._thr: torch.Tensor | None = None

    def _zeros(self, device: torch.device) -> dict[str, torch.Tensor]:
        n = len(self.thresholds)
        return {k: torch.zeros(n, device=device) for k in ("tp", "fp", "fn")}

    def update_state(self, y_true: Any, y_pred: torch.Tensor, sample_weight: Any = None) -> None:
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        st = self._states(y_pred.device)
        y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred.to(torch.float32), y_true.to(torch.float32))
        thr = self._thr
        if thr is None or thr.device != y_pred.device:
            thr = self._thr = torch.tensor(self.thresholds, device=y_pred.device).unsqueeze(1)  # (n, 1)
        pos_pred = y_pred.reshape(1, -1) > thr  # (n, N)
        pos_true = (y_true != 0).reshape(1, -1)
        if sample_weight is not None:
            sw = torch.as_tensor(sample_weight, device=y_pred.device).to(torch.float32)
            if sw.dim() < y_pred.dim():
                sw = sw.reshape(sw.shape + (1,) * (y_pred.dim() - sw.dim()))
            w = torch.broadcast_to(sw, y_pred.shape).reshape(1, -1)
        else:
            w = torch.ones((1, 1), device=y_pred.device)
        st["tp"].add_(((pos_pred & pos_true) * w).sum(dim=1))
        st["fp"].add_(((pos_pred & ~pos_true) * w).sum(dim=1))
        st["fn"].add_(((~pos_pred & pos_true) * w).sum(dim=1))

    def _out(self, values: torch.Tensor) -> torch.Tensor:
        return values[0] if self._single else values

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "thresholds": self.thresholds[0] if self._single else self.thresholds}


class Precision(_ConfusionMetric):
    """Fraction of predicted positives that are real positives: ``tp / (tp + fp)`` (0 when undefined).

    Args:
        thresholds: decision threshold(s) on probabilities; 0.5 by default.
        name: logged name (``"precision"``).
    """

    default_name = "precision"

    def result(self) -> torch.Tensor:
        if not self._state:
            return torch.zeros(())
        return self._out(_divide_no_nan(self._state["tp"], self._state["tp"] + self._state["fp"]))


class Recall(_ConfusionMetric):
    """Fraction of real positives predicted positive: ``tp / (tp + fn)`` (0 when undefined).

    Args:
        thresholds: decision threshold(s) on probabilities; 0.5 by default.
        name: logged name (``"recall"``).
    """

    default_name = "recall"

    def result(self) -> torch.Tensor:
        if not self._state:
            return torch.zeros(())
        return self._out(_divide_no_nan(self._state["tp"], self._state["tp"] + self._state["fn"]))


class AUC(Metric):
    """Area under the ROC (or PR) curve from counts at evenly spaced thresholds, as ``keras.metrics.AUC``.

    Predictions are bucketed at ``num_thresholds`` thresholds ``{-eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps}``
    and the area is Keras's Riemann sum ("interpolation": trapezoids for ROC, Davis & Goadrich
    interpolation for PR).

    Args:
        num_thresholds: number of thresholds (200).
        curve: ``"ROC"`` or ``"PR"``.
        summation_method: ``"interpolation"``, ``"minoring"`` or ``"majoring"``.
        name: logged name (``"auc"``).
        from_logits: apply a sigmoid to ``y_pred`` first.
    """

    default_name = "auc"

    direction = "up"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: str | None = None, from_logits: bool = False) -> None:
        super().__init__(name)
        if not isinstance(num_thresholds, int) or num_thresholds <= 1:
            raise ConfigError(f"AUC: num_thresholds must be an integer > 1, got {num_thresholds!r}")
        if curve.upper() not in ("ROC", "PR"):
            raise ConfigError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ConfigError(
                f"AUC: summation_method must be 'interpolation', 'minoring' or 'majoring', got {summation_method!r}"
            )
        self.num_thresholds, self.curve, self.summation_method = num_thresholds, curve.upper(), summation_method
        self.from_logits = bool(from_logits)

    def _zeros(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {k: torch.zeros(self.num_thresholds, device=device) for k in ("tp", "fp", "tn", "fn")}

    def update_state(self, y_true: Any, y_pred: torch.Tensor, sample_weight: Any = None) -> None:
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        st = self._states(y_pred.device)
        y_pred = y_pred.to(torch.float32)
        if self.from_logits:
            y_pred = torch.sigmoid(y_pred)
        y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true.to(torch.float32))
        if sample_weight is not None:
            sw = torch.as_tensor(sample_weight, device=y_pred.device).to(torch.float32)
            if sw.dim() < y_pred.dim():
                sw = sw.reshape(sw.shape + (1,) * (y_pred.dim() - sw.dim()))
            w = torch.broadcast_to(sw, y_pred.shape).reshape(-1)
        else:
            w = torch.ones((), device=y_pred.device)
        pred = y_pred.clip(0.0, 1.0).reshape(-1)
        true = (y_true != 0).to(torch.float32).reshape(-1)
        pos, neg = true * w, (1.0 - true) * w
        pos, neg = torch.broadcast_to(pos, pred.shape), torch.broadcast_to(neg, pred.shape)
        # Keras's bucketing: a prediction p lands in bucket ceil(p*(n-1)) - 1 (>= 0); it is above
        # every threshold of index <= its bucket, so a reversed cumulative sum gives the counts.
        bucket = torch.relu(torch.ceil(pred * (self.num_thresholds - 1)) - 1).to(torch.int64)
        tp_b = torch.zeros(self.num_thresholds, device=pred.device).index_add_(0, bucket, pos)
        fp_b = torch.zeros(self.num_thresholds, device=pred.device).index_add_(0, bucket, neg)
        tp = tp_b.flip(0).cumsum(0).flip(0)
        fp = fp_b.flip(0).cumsum(0).flip(0)
        st["tp"].add_(tp)
        st["fp"].add_(fp)
        st["tn"].add_(neg.sum() - fp)
        st["fn"].add_(pos.sum() - tp)

    def result(self) -> torch.Tensor:
        if not self._state:
            return torch.zeros(())
        tp, fp, tn, fn = (self._state[k] for k in ("tp", "fp", "tn", "fn"))
        n = self.num_thresholds
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[: n - 1] - tp[1:]
            p = tp + fp
            dp = p[: n - 1] - p[1:]
            slope = _divide_no_nan(dtp, dp.clamp(min=0))
            intercept = tp[1:] - slope * p[1:]
            both = (p[: n - 1] > 0) & (p[1:] > 0)
            ratio = torch.where(both, _divide_no_nan(p[: n - 1], p[1:].clamp(min=0)), torch.ones_like(p[1:]))
            inc = _divide_no_nan(slope * (dtp + intercept * torch.log(ratio)), (tp[1:] + fn[1:]).clamp(min=0))
            return inc.sum()
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[: n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[: n - 1], y[1:])
        else:
            heights = torch.maximum(y[: n - 1], y[1:])
        return ((x[: n - 1] - x[1:]) * heights).sum()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "from_logits": self.from_logits}


class MeanSquaredError(MeanMetricWrapper):
    """Epoch mean of the per-sample mean squared error."""

    direction = "down"

    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(_same_rank(losses_mod.mean_squared_error), name)


class MeanAbsoluteError(MeanMetricWrapper):
    """Epoch mean of the per-sample mean absolute error."""

    direction = "down"

    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(_same_rank(losses_mod.mean_absolute_error), name)


class BinaryCrossentropy(MeanMetricWrapper):
    """Epoch mean of the per-sample binary cross-entropy (as a metric, unweighted by the loss's reduction)."""

    direction = "down"

    def __init__(self, name: str = "binary_crossentropy", from_logits: bool = False) -> None:
        super().__init__(_same_rank(losses_mod.binary_crossentropy), name, from_logits=from_logits)


def _same_rank(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def wrapped(y_true: torch.Tensor, y_pred: torch.Tensor, **kw: Any) -> torch.Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return fn(y_true, y_pred, **kw)

    wrapped.__name__ = fn.__name__
    return wrapped


METRIC_CLASSES: dict[str, type[Metric]] = {
    c.__name__: c for c in (BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, Precision, Recall,
                            AUC, Mean, MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy)
}
_ALIASES: dict[str, type[Metric]] = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
}


def accuracy_for(y_shape: Sequence[int | None], output_shape: Sequence[int | None], name: str = "accuracy"
                 ) -> Metric:
    """Keras's choice for ``"accuracy"``: binary for one output unit, sparse when labels have fewer axes
    (or one id per sample against several outputs), else categorical."""
    if output_shape[-1] == 1:
        return BinaryAccuracy(name=name)
    if len(y_shape) < len(output_shape) or (y_shape[-1] == 1 and output_shape[-1] != 1):
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def get(identifier: Any, y_shape: Sequence[int | None] = (None, 1), output_shape: Sequence[int | None] = (None, 1)
        ) -> Metric:
    """A metric from a Keras name, a ``{"class_name", "config"}`` dict, a :class:`Metric` or a function.

    ``"accuracy"``/``"acc"`` resolve from the label and output shapes (see :func:`accuracy_for`); a
    metric given by name is logged under that name, like Keras.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return accuracy_for(y_shape, output_shape, name=identifier)
        cls = _ALIASES.get(identifier) or METRIC_CLASSES.get(identifier)
        if cls is None:
            raise ConfigError(
                f"metrics: unknown metric {identifier!r}; expected 'accuracy' or one of "
                f"{sorted({*_ALIASES, *METRIC_CLASSES})}, a Metric object or a function (y_true, y_pred)"
            )
        m = cls()
        m.name = identifier
        return m
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = METRIC_CLASSES.get(identifier["class_name"])
        if cls is None:
            raise ConfigError(f"metrics: unknown metric class {identifier['class_name']!r}")
        return cls.from_config(dict(identifier.get("config", {})))
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ConfigError(f"metrics: expected a metric name, Metric object or function, got {identifier!r}")
