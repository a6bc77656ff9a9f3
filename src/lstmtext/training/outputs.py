"""Losses and metrics of a model with several outputs: Keras's ``compile(loss=[...] | {...}, loss_weights=...)``.

For a model whose outputs are a list (or a dict), ``loss`` may be one loss (used for every output), a list
(one per output, in order) or a dict by output name; ``loss_weights`` a list or dict of floats; ``metrics``
one list (for every output), a list of lists, or a dict by output name. The total loss is the weighted sum;
``fit`` reports it as ``loss`` and each output's as ``<output>_loss``, and metrics as ``<output>_<metric>``,
as Keras 3 does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lstmtext.errors import ConfigError, DataError
from lstmtext.layers.symbolic import flatten
from lstmtext.training import losses as losses_mod
from lstmtext.training import metrics as metrics_mod


def _is_spec(value: Any) -> bool:
    """A single loss/metric: a name, an object, or a serialized ``{"class_name", "config"}``."""
    return not isinstance(value, (list, tuple, Mapping)) or (isinstance(value, Mapping) and "class_name" in value)


def leaves(specs: Any) -> list[Any]:
    """Every loss/metric named in a nest of lists and dicts by output name (None entries left out)."""
    if specs is None:
        return []
    if _is_spec(specs):
        return [specs]
    values = specs.values() if isinstance(specs, Mapping) else specs
    return [leaf for v in values for leaf in leaves(v)]


def per_output(spec: Any, names: list[str], what: str, is_leaf: Any) -> list[Any]:
    """``spec`` (one value, a list in output order, or a dict by output name) as one value per output."""
    if isinstance(spec, Mapping) and not is_leaf(spec):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ConfigError(f"compile: {what} names outputs {unknown} the model does not have; its outputs are "
                              f"{names}")
        return [spec.get(name) for name in names]
    if isinstance(spec, (list, tuple)) and not is_leaf(spec):
        if len(spec) != len(names):
            raise ConfigError(f"compile: {what} has {len(spec)} entries for a model with {len(names)} outputs "
                              f"{names}")
        return list(spec)
    return [spec] * len(names)


def pick(values: Any, names: list[str]) -> list[Any]:
    """Targets or predictions (a list in output order, or a dict by output name) as one value per output."""
    if isinstance(values, Mapping):
        missing = [n for n in names if n not in values]
        if missing:
            raise DataError(f"y: the targets dict has keys {sorted(values)}; the model's outputs are {names} "
                            f"(missing {missing})")
        return [values[n] for n in names]
    items = flatten(values) if isinstance(values, (list, tuple)) else [values]
    if len(items) != len(names):
        raise DataError(f"y: the model has {len(names)} outputs {names}, got {len(items)} target array(s)")
    return items


class OutputLosses(losses_mod.Loss):
    """The compiled loss of a model with several outputs: ``sum(weight_i * loss_i(y_i, y_pred_i))``.

    Args:
        losses: one :class:`~lstmtext.training.losses.Loss` (or None: the output is not trained) per output.
        weights: one float per output.
        names: the outputs' names.
    """

    def __init__(self, losses: list[losses_mod.Loss | None], weights: list[float], names: list[str]) -> None:
        super().__init__(name="loss")
        if all(loss is None for loss in losses):
            raise ConfigError(f"compile: no loss for any of the outputs {names}")
        self.losses, self.weights, self.names = losses, weights, names
        self.trackers = [metrics_mod.Mean(name=f"{n}_loss") if loss is not None else None
                         for n, loss in zip(names, losses)]
        self.last: list[torch.Tensor | None] = [None] * len(names)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        ys, preds = pick(y_true, self.names), pick(y_pred, self.names)
        total = None
        for i, (loss, w, y, p) in enumerate(zip(self.losses, self.weights, ys, preds)):
            if loss is None:
                continue
            value = loss(y, p, sample_weight)
            self.last[i] = value.detach()
            term = value * w
            total = term if total is None else total + term
        return total  # type: ignore[return-value]

    def check_targets(self, y: Any, output_shape: Any) -> None:
        if isinstance(output_shape, Mapping):
            shapes = [output_shape[n] for n in self.names]
        elif isinstance(output_shape, list):
            shapes = list(output_shape)
        else:
            shapes = [output_shape]
        for loss, target, shape, name in zip(self.losses, pick(y, self.names), shapes, self.names):
            if loss is not None:
                try:
                    loss.check_targets(np.asarray(target), shape)
                except DataError as e:
                    raise DataError(f"output {name!r}: {e}") from e

    def get_config(self) -> dict[str, Any]:
        return {"losses": [None if loss is None else losses_mod.serialize(loss) for loss in self.losses],
                "weights": self.weights, "names": self.names}


def compile_losses(loss: Any, loss_weights: Any, names: list[str]) -> losses_mod.Loss:
    """The compiled loss for outputs ``names`` (one output: the loss itself, unweighted unless asked)."""
    is_leaf = _is_spec
    if len(names) <= 1:
        if isinstance(loss, (list, tuple)) and len(loss) == 1:
            loss = loss[0]
        if isinstance(loss, Mapping) and not is_leaf(loss):
            loss = next(iter(loss.values())) if len(loss) == 1 else loss
        single = losses_mod.get(loss)
        weights = per_output(loss_weights, names or ["output"], "loss_weights", lambda v: not isinstance(
            v, (list, tuple, Mapping))) if loss_weights is not None else [1.0]
        if float(weights[0]) == 1.0:
            return single
        return OutputLosses([single], [float(weights[0])], names or ["output"])
    specs = per_output(loss, names, "loss", is_leaf)
    weights = [1.0] * len(names) if loss_weights is None else [
        1.0 if w is None else float(w) for w in per_output(loss_weights, names, "loss_weights",
                                                          lambda v: not isinstance(v, (list, tuple, Mapping)))]
    return OutputLosses([None if s is None else losses_mod.get(s) for s in specs], weights, names)


def metric_specs(metrics: Any, names: list[str]) -> list[tuple[int | None, Any]]:
    """``(output index or None for a one-output model, metric spec)`` pairs from compile's ``metrics``."""
    if not metrics:
        return []
    if len(names) <= 1:
        return [(None, m) for m in leaves(metrics)]
    out: list[tuple[int | None, Any]] = []
    if isinstance(metrics, Mapping) and not _is_spec(metrics):
        per = per_output(metrics, names, "metrics", _is_spec)
    elif isinstance(metrics, (list, tuple)) and metrics and all(
            isinstance(m, (list, tuple)) or m is None for m in metrics):
        per = per_output(list(metrics), names, "metrics", _is_spec)
    else:
        per = [list(metrics)] * len(names)  # the same metrics for every output
    for i, entry in enumerate(per):
        for m in ([] if entry is None else entry if isinstance(entry, (list, tuple)) else [entry]):
            out.append((i, m))
    return out
