"""Keras's training API as a mixin: ``compile``, ``fit``, ``evaluate``, ``predict`` and the on-batch variants.

A model class (``Sequential``) inherits :class:`Trainer`. The loop follows Keras 3 on its torch
backend step for step: forward in training mode, compiled loss (+ regularization losses), backward,
optimizer update (clip -> weight decay -> update), constraints, then stateful metrics over the epoch.

Resumable state lives in :class:`TrainState` (epoch, step in the epoch, global step, the shuffle seed,
history); dropout draws from PyTorch's global generator, whose state :meth:`Trainer.training_state`
captures, and epoch orders come from :func:`~lstmtext.training.data.epoch_permutation`, so a run
restored from a checkpoint replays exactly.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.symbolic import flatten, pack_like
from lstmtext.training import losses as losses_mod
from lstmtext.training import metrics as metrics_mod
from lstmtext.training import optimizers as optimizers_mod
from lstmtext.training import outputs as outputs_mod
from lstmtext.training.bucketing import BucketedBatches
from lstmtext.training.callbacks import Callback, CallbackList, History
from lstmtext.training.data import (
    ArrayData,
    StreamData,
    epoch_permutation,
    first,
    is_stream,
    make_data,
    nest_map,
    split_validation,
    unpack_validation_data,
)
from lstmtext.training.distributed_fit import DistributedFit
from lstmtext.training.fit_config import FitConfig, check_positive_int, resolve_verbose
from lstmtext.training.progress import ProgbarLogger
from lstmtext.training.resume import restore_training
from lstmtext.training.state import TrainState

if TYPE_CHECKING:
    from torch import nn

_KERAS_ONLY_COMPILE_ARGS = {"run_eagerly", "jit_compile", "steps_per_execution", "auto_scale_loss"}


class SharedPrefix(Protocol):
    """What a model offers ``predict`` and ``evaluate`` to skip the leading padding its rows share
    (:class:`lstmtext.models.shared_padding.SharedPadding`)."""

    def plan(self, ids: torch.Tensor, batch_size: int, sort: bool = True
             ) -> tuple[torch.Tensor | None, list[int]] | None: ...
    def __call__(self, ids: torch.Tensor, start: int) -> Any: ...


def _known(steps: int) -> int | None:
    """A step count for progress bars: None for a generator of unknown length."""
    return steps if steps < 1 << 62 else None


class LazyLogs(Mapping[str, float]):
    """Batch logs computed on first access (a host sync), so callbacks that don't read them cost nothing."""

    def __init__(self, compute: Callable[[], dict[str, float]]) -> None:
        self._compute, self._value = compute, None

    def _get(self) -> dict[str, float]:
        if self._value is None:
            self._value = self._compute()
        return self._value

    def __getitem__(self, key: str) -> float:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class Trainer:
    """Keras's ``compile``/``fit``/``evaluate``/``predict``, for a model class (``lstmtext.models.Model``).

    The host class must also be a :class:`~lstmtext.layers.Layer` (a ``torch.nn.Module``); what the loop
    uses of it is declared below, and :class:`~lstmtext.models.Model` is ``Model(Trainer, Layer)``.
    """

    if TYPE_CHECKING:  # provided by the host model (a Layer, hence a torch.nn.Module)
        name: str
        built: bool
        training: bool

        def __call__(self, inputs: Any, *, training: bool | None = None) -> Any: ...
        def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...
        def train(self, mode: bool = True) -> Any: ...
        def eval(self) -> Any: ...
        def to(self, device: torch.device) -> Any: ...
        def build(self, input_shape: Any) -> None: ...
        def compute_output_shape(self, input_shape: Any) -> Any: ...
        def check_input(self, x: Any, arg: str = "x") -> None: ...
        def output_shape_for(self, x: Any) -> Any: ...
        def takes_strings(self) -> bool: ...
        def shared_padding(self, x: Any) -> SharedPrefix | None: ...
        def known_output_names(self) -> list[str] | None: ...
        def has_constraints(self) -> bool: ...
        def apply_constraints(self) -> None: ...
        @property
        def losses(self) -> list[torch.Tensor]: ...

    def _init_trainer(self) -> None:
        self.optimizer: optimizers_mod.Optimizer | None = None
        self.loss: losses_mod.Loss | None = None
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        self.train_state = TrainState()
        self._metric_specs: Any = []
        self._weighted_metric_specs: Any = []
        self._loss_spec: Any = None
        self._loss_weights: Any = None
        self._output_names: list[str] = []  # several outputs: their names; one output: []
        self._metric_outputs: list[int | None] = []  # the output each compiled metric reads (None: the only one)
        self._weighted_outputs: list[int | None] = []
        self.compiled_metrics: list[metrics_mod.Metric] = []
        self._weighted_metrics: list[metrics_mod.Metric] = []
        self._metrics_built = False
        self._loss_tracker = metrics_mod.Mean(name="loss")
        self._device_request: torch.device | None = None
        self._constrained = False
        # What the train step calls; distributed training swaps in a DistributedDataParallel wrapper.
        self._forward_module: Callable[..., torch.Tensor] | None = None
        # The distributed side of the running fit (distributed_fit.DistributedFit), None in one process.
        self._distributed: Any = None

    # -- compile --------------------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None,
                weighted_metrics: Any = None, device: str | torch.device | None = None,
                loss_weights: Any = None, **kwargs: Any) -> None:
        """Configure training, as ``keras.Model.compile``.

        Args:
            optimizer: an optimizer object or Keras name (``"adam"``, ``"sgd"``, ``"rmsprop"``, ``"adamw"``).
            loss: a loss object, Keras name (``"binary_crossentropy"`` ...) or function ``(y_true, y_pred)``;
                for a model with several outputs also a list (one per output) or a dict by output name.
            metrics: metric objects or names; ``"accuracy"`` picks binary/sparse/categorical accuracy
                from the targets and outputs, like Keras. Several outputs: one list for all, a list of
                lists, or a dict by output name (logged as ``<output>_<metric>``).
            weighted_metrics: metrics that also take ``sample_weight``/``class_weight`` into account.
            device: where to train (default: the model's device if moved, else CUDA when present, else CPU).
            loss_weights: several outputs: a list or dict of floats weighting each output's loss in the total
                (see :mod:`lstmtext.training.outputs`).
            **kwargs: Keras-only switches (``jit_compile``, ``run_eagerly``, ``steps_per_execution``) are
                accepted and have no effect; anything else is an error.

        >>> model.compile(optimizer=Adam(), loss=BinaryCrossentropy(), metrics=["accuracy"])  # doctest: +SKIP
        """
        unknown = set(kwargs) - _KERAS_ONLY_COMPILE_ARGS
        if unknown:
            raise ConfigError(f"compile: unexpected argument(s) {sorted(unknown)}")
        self.optimizer = optimizers_mod.get(optimizer)
        if loss is None:
            raise ConfigError("compile: loss is required, e.g. loss='binary_crossentropy'")
        self._loss_spec, self._loss_weights = loss, loss_weights
        names = self.known_output_names()
        nested = isinstance(loss, (list, tuple)) or (isinstance(loss, Mapping) and "class_name" not in loss)
        # A subclassed model's outputs are known at its first call: a per-output loss waits for it.
        self.loss = None if names is None and nested else outputs_mod.compile_losses(
            loss, loss_weights, names if names is not None and len(names) > 1 else [])
        for arg, specs in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if specs is not None and (isinstance(specs, str) or not isinstance(specs, (Sequence, Mapping))):
                raise ConfigError(f"compile: {arg} must be a list (or a dict by output name), got {specs!r}")
        self._metric_specs = metrics if isinstance(metrics, Mapping) else list(metrics or [])
        self._weighted_metric_specs = (weighted_metrics if isinstance(weighted_metrics, Mapping)
                                       else list(weighted_metrics or []))
        # Unknown names fail now, not at the first batch.
        for spec in outputs_mod.leaves(self._metric_specs) + outputs_mod.leaves(self._weighted_metric_specs):
            metrics_mod.get(spec)
        self._output_names = []
        self._device_request = torch.device(device) if device is not None else None
        self.compiled_metrics, self._weighted_metrics, self._metrics_built = [], [], False
        self.compiled = True

    def _require_compiled(self, method: str) -> None:
        if not self.compiled or self._loss_spec is None or self.optimizer is None:
            raise ConfigError(
                f"{method}: the model must be compiled first: "
                "call model.compile(optimizer=..., loss=..., metrics=[...])"
            )

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *[m.name for m in self.compiled_metrics + self._weighted_metrics]]

    # -- preparation ----------------------------------------------------------------------------
    def _target_device(self) -> torch.device:
        if self._device_request is not None:
            return self._device_request
        params = list(self.parameters())
        if params and params[0].device.type != "cpu":
            return params[0].device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _prepare(self, data: ArrayData, method: str, training: bool, arg: str = "x") -> torch.device:
        """Build the model for ``data``, check inputs and targets, move to the device, build metrics."""
        self.check_input(data.x, arg)
        device = self._target_device()
        self.to(device)
        out_shape = self.output_shape_for(data.x)
        several = isinstance(out_shape, (list, dict))
        if several and not self._output_names:
            names = self.known_output_names() or (sorted(out_shape) if isinstance(out_shape, dict) else
                                                  [f"output_{i}" for i in range(len(out_shape))])
            self._output_names = names
            if self._loss_spec is not None and not isinstance(self.loss, outputs_mod.OutputLosses):
                self.loss = outputs_mod.compile_losses(self._loss_spec, self._loss_weights, names)
        if data.y_array is not None and self.loss is not None:
            self.loss.check_targets(data.y_array, out_shape)
            if not self._metrics_built:
                self.compiled_metrics, self._metric_outputs = self._resolve_metrics(
                    self._metric_specs, data.y_array, out_shape, set())
                taken = {m.name for m in self.compiled_metrics}
                self._weighted_metrics, self._weighted_outputs = self._resolve_metrics(
                    self._weighted_metric_specs, data.y_array, out_shape, taken)
                self._metrics_built = True
        if training:
            self._constrained = self.has_constraints()
            opt = self.optimizer
            params = [p for p in self.parameters() if p.requires_grad]
            if not params:
                raise ConfigError(f"{method}: the model has no trainable weights")
            if not opt.built or len(opt.params) != len(params) or any(a is not b for a, b in zip(opt.params, params)):
                opt.build(params)
        return device

    def _resolve_metrics(self, specs: Any, y: Any, out_shape: Any, taken: set[str]
                         ) -> tuple[list[Any], list[int | None]]:
        names = self._output_names
        if names:
            ys = outputs_mod.pick(y, names)
            shapes = [out_shape[n] for n in names] if isinstance(out_shape, dict) else list(out_shape)
        out, where = [], []
        for index, spec in outputs_mod.metric_specs(specs, names):
            if index is None:
                m = metrics_mod.get(spec, (None, *np.shape(y)[1:]), out_shape)
            else:
                m = metrics_mod.get(spec, (None, *np.shape(ys[index])[1:]), shapes[index])
                m.name = f"{names[index]}_{m.name}"
            if m.name in taken:
                m.name = f"weighted_{m.name}" if f"weighted_{m.name}" not in taken else f"{m.name}_{len(taken)}"
            taken.add(m.name)
            out.append(m)
            where.append(index)
        return out, where

    def _all_metrics(self) -> list[metrics_mod.Metric]:
        per_output = [t for t in getattr(self.loss, "trackers", []) if t is not None]
        return [self._loss_tracker, *per_output, *self.compiled_metrics, *self._weighted_metrics]

    def reset_metrics(self) -> None:
        for m in self._all_metrics():
            m.reset_state()

    def _results(self) -> dict[str, float]:
        ms = self._all_metrics()
        # One host sync for all metrics.
        values = torch.stack([m.result().to(torch.float32).cpu().reshape(()) for m in ms]).tolist()
        return dict(sorted(zip((m.name for m in ms), values)))

    # -- one step -------------------------------------------------------------------------------
    def compute_loss(self, y: Any, y_pred: Any, sample_weight: torch.Tensor | None = None) -> torch.Tensor:
        """The compiled loss plus the layers' regularization losses, as Keras's ``compute_loss``."""
        loss = self.loss(y, y_pred, sample_weight)
        reg = self.losses
        if reg:
            loss = loss + torch.stack([r.to(loss.dtype) for r in reg]).sum()
        return loss

    def train_step(self, x: Any, y: Any, sample_weight: torch.Tensor | None) -> tuple[torch.Tensor, Any]:
        """Forward, loss, backward, update, constraints. Returns the detached loss and predictions."""
        forward = self._forward_module or self
        y_pred = forward(x, training=True)
        loss = self.compute_loss(y, y_pred, sample_weight)
        if self._distributed is not None:  # distributed: this rank's share of the global batch's loss
            loss = self._distributed.scale_loss(self, loss, sample_weight)
        optimizer = self._compiled_optimizer()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if self._constrained:
            self.apply_constraints()
        return loss.detach(), nest_map(torch.Tensor.detach, y_pred)

    def _compiled_optimizer(self) -> optimizers_mod.Optimizer:
        if self.optimizer is None:
            raise ConfigError("the model must be compiled first: call model.compile(optimizer=..., loss=...)")
        return self.optimizer

    def _update_metrics(self, loss: torch.Tensor, y: Any, y_pred: Any, sample_weight: torch.Tensor | None) -> None:
        if self._distributed is not None:  # distributed: all ranks' updates, summed
            self._distributed.update_metrics(self, loss, y, y_pred, sample_weight)
        else:
            self._update_local_metrics(loss, y, y_pred, sample_weight)

    def _update_local_metrics(self, loss: torch.Tensor, y: Any, y_pred: Any,
                              sample_weight: torch.Tensor | None) -> None:
        # The loss tracker is a Keras Mean weighted by the batch size; updated in place, no new tensors.
        batch = first(y_pred).shape[0]
        st = self._loss_tracker._states(loss.device)
        st["total"].add_(loss, alpha=batch)
        st["count"].add_(batch)
        names = self._output_names
        if names and isinstance(self.loss, outputs_mod.OutputLosses):  # each output's loss, metrics on their own
            for tracker, value in zip(self.loss.trackers, self.loss.last):
                if tracker is not None and value is not None:
                    tst = tracker._states(loss.device)
                    tst["total"].add_(value, alpha=batch)
                    tst["count"].add_(batch)
            ys, preds = outputs_mod.pick(y, names), outputs_mod.pick(y_pred, names)
        for m, i in zip(self.compiled_metrics, self._metric_outputs):
            m.update_state(y, y_pred) if i is None else m.update_state(ys[i], preds[i])
        for m, i in zip(self._weighted_metrics, self._weighted_outputs):
            (m.update_state(y, y_pred, sample_weight) if i is None
             else m.update_state(ys[i], preds[i], sample_weight))

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = "auto", callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            class_weight: Mapping[int, float] | None = None, sample_weight: Any = None, initial_epoch: int = 0,
            steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int = 1,
            resume_from: str | None = None, distributed: bool | None = None,
            bucket_by_length: bool = False) -> History:
        """Train for ``epochs`` epochs, as ``keras.Model.fit``; returns the :class:`History`.

        Args:
            x: inputs, ``(samples, ...)`` (token ids ``(samples, time)`` for an Embedding model).
            y: targets, one row per sample.
            batch_size: samples per step (32); the last batch of an epoch may be smaller.
            epochs: index of the last epoch (with ``initial_epoch``, Keras's meaning).
            verbose: ``"auto"``/1 progress bar, 2 one line per epoch, 0 silent.
            callbacks: :class:`Callback` objects.
            validation_split: fraction of the data, taken from the *end* before shuffling, held out.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``; overrides the split.
            shuffle: reshuffle the training samples every epoch.
            class_weight: ``{class: weight}`` turned into per-sample loss weights.
            sample_weight: per-sample loss weights ``(samples,)``.
            initial_epoch: epoch to start from.
            steps_per_epoch: cap on steps per epoch.
            validation_steps, validation_batch_size, validation_freq: as Keras.
            resume_from: a checkpoint folder written by ``model.save``/``ModelCheckpoint``: weights,
                optimizer, RNG and loop position are restored and training continues exactly there.
            distributed: train in all the processes torchrun started, with DistributedDataParallel (True;
                None: when ``WORLD_SIZE > 1``). ``batch_size`` is then the global batch, split over the
                processes; only rank 0 prints and writes. See :mod:`lstmtext.training.distributed_fit`.
            bucket_by_length: (lstmtext only) batch samples of similar length together and cut each batch
                to its longest sample: the same samples and steps, far fewer padding timesteps. ``x`` must be
                zero-padded token ids; see :mod:`lstmtext.training.bucketing` for what changes. Not combined
                with ``distributed``.

        Returns:
            :class:`History` with ``history.history[name]`` = one float per epoch.
        """
        self._require_compiled("fit")
        dist = DistributedFit.start(distributed)  # None: one process
        if dist is not None and bucket_by_length:
            raise ConfigError("fit: bucket_by_length=True is not supported with distributed training; "
                              "pass bucket_by_length=False")
        verbose = resolve_verbose(verbose)
        batch_size = check_positive_int("batch_size", 32 if batch_size is None else batch_size)
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
            raise ConfigError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
        data = self._data(x, y, sample_weight, class_weight, method="fit")
        if data.y is None:
            raise ConfigError("fit: y (the targets) is required")
        if isinstance(data, StreamData) and validation_split:
            raise ConfigError("fit: validation_split needs arrays; with a generator, DataLoader or PyDataset pass "
                              "validation_data")
        if bucket_by_length and (isinstance(data, StreamData) or not isinstance(data.x, torch.Tensor)):
            got = ("a generator, DataLoader or PyDataset" if isinstance(data, StreamData) else
                   "several inputs (a list or dict of arrays)" if isinstance(data.x, (list, tuple, dict)) else
                   "text (a string array)")
            raise ConfigError(f"fit: bucket_by_length=True takes x as one array of padded token ids (samples, time), "
                              f"got {got}; fit with bucket_by_length=False")
        if dist is not None and isinstance(data, StreamData):
            raise ConfigError(f"fit: distributed training (distributed={distributed!r} under torchrun) shards arrays "
                              "by rows; x is a generator, DataLoader or PyDataset, so pass arrays (or a list / dict "
                              "of arrays)")
        val: ArrayData | StreamData | None = None
        if validation_data is not None and is_stream(validation_data):
            val = StreamData(validation_data, "validation_data", strings=self.takes_strings())
        elif validation_data is not None:
            val = unpack_validation_data(validation_data, strings=self.takes_strings())
        elif validation_split:
            data, val = split_validation(data, validation_split)
        device = self._prepare(data, "fit", training=True)
        if val is not None:
            self._prepare(val, "fit", training=False, arg="validation_data[0]" if validation_data is not None else "x")
        data = data.to(device)
        val = val.to(device) if val is not None else None
        bucketed = BucketedBatches(data, batch_size) if bucket_by_length else None
        steps = data.num_batches(batch_size)
        if steps_per_epoch is not None:
            steps = min(steps, check_positive_int("steps_per_epoch", steps_per_epoch))

        state = self.train_state
        if resume_from is not None:
            restore_training(self, resume_from)
            state = self.train_state
            start_epoch, start_step = state.epoch, state.step_in_epoch
        else:
            start_epoch, start_step = int(initial_epoch), 0
            # Drawn from the global generator, so set_random_seed fixes it; kept for resuming.
            state.shuffle_seed = int(torch.randint(0, 2**62, (1,)).item())
            state.epochs, state.epoch, state.step_in_epoch = epochs, start_epoch, 0
        if dist is not None:
            verbose, callbacks = dist.begin(self, device, state, batch_size, verbose, callbacks)
        # a generator, DataLoader or PyDataset makes its own batches: report the size of its first one
        shown_batch = len(flatten(data.x)[0]) if isinstance(data, StreamData) else batch_size
        config = FitConfig.resolve(self, data, val, shown_batch, epochs, start_epoch, steps, shuffle,
                                   state.shuffle_seed, class_weight, validation_split, device)
        if verbose:
            print(config.format(), flush=True)

        history = History()
        history.history = {k: list(v) for k, v in state.history.items()} if resume_from is not None else {}
        history.epoch = list(range(len(next(iter(history.history.values()), []))))
        cbs = [ProgbarLogger(verbose)] if verbose else []
        cbs += list(callbacks or []) + [history]
        cb = CallbackList(cbs, model=self, params={"verbose": verbose, "epochs": epochs,
                                                   "steps": _known(steps)})
        want_batch_end = cb.wants("on_train_batch_end")
        want_batch_begin = cb.wants("on_train_batch_begin")
        self.stop_training = False
        if resume_from is None:
            state.history = {}
        cb.on_train_begin()
        epoch_logs: dict[str, float] = {}
        for epoch in range(start_epoch, epochs):
            if not (epoch == start_epoch and start_step > 0):
                self.reset_metrics()
            cb.on_epoch_begin(epoch)
            self.train()
            first = start_step if epoch == start_epoch else 0
            if bucketed is not None:
                batches = bucketed.epoch(state.shuffle_seed, epoch, shuffle, first, steps)
            else:
                order = (epoch_permutation(state.shuffle_seed, epoch, len(data)).to(device)
                         if shuffle and not isinstance(data, StreamData) else None)
                make_batches = data.batches if dist is None else partial(dist.batches, data)
                batches = make_batches(batch_size, order, first, steps)
            for step, (xb, yb, swb) in enumerate(batches, start=first):
                if want_batch_begin:
                    cb.on_train_batch_begin(step)
                loss, y_pred = self.train_step(xb, yb, swb)
                self._update_metrics(loss, yb, y_pred, swb)
                state.step_in_epoch, state.global_step = step + 1, state.global_step + 1
                if want_batch_end:
                    cb.on_train_batch_end(step, LazyLogs(self._results))
                if dist is not None:
                    dist.agree_on_stop(self, step_level=True)
                if self.stop_training:
                    break
            epoch_logs = self._results()
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_data(val, validation_batch_size or batch_size, validation_steps, cb)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            state.epoch, state.step_in_epoch = epoch + 1, 0
            for k, v in epoch_logs.items():
                state.history.setdefault(k, []).append(v)
            cb.on_epoch_end(epoch, epoch_logs)
            if dist is not None:
                dist.agree_on_stop(self)
            if self.stop_training:
                break
        self.eval()
        cb.on_train_end(epoch_logs)
        if dist is not None:
            dist.end(self)
        self.history = history
        return history

    def _data(self, x: Any, y: Any, sample_weight: Any, class_weight: Any, method: str) -> Any:
        """Arrays as :class:`ArrayData`, or a generator / DataLoader / PyDataset as :class:`StreamData`."""
        if is_stream(x):
            if y is not None or sample_weight is not None or class_weight is not None:
                raise ConfigError(f"{method}: x gives the batches (a generator, DataLoader or PyDataset): its batches "
                                  "hold the targets, so y, sample_weight and class_weight must not be given")
            return StreamData(x, "x", strings=self.takes_strings())
        return make_data(x, y, sample_weight, class_weight, strings=self.takes_strings())

    # -- evaluate / predict ---------------------------------------------------------------------
    def _evaluate_data(self, data: ArrayData, batch_size: int, steps: int | None, cb: CallbackList | None
                       ) -> dict[str, float]:
        self.reset_metrics()
        self.eval()
        stop = data.num_batches(batch_size) if steps is None else min(steps, data.num_batches(batch_size))
        want_end = cb is not None and cb.wants("on_test_batch_end")
        if cb is not None:
            cb.on_test_begin()
        # Where loss and metrics are sums over samples, whatever the batches hold, the rows may be reordered.
        order, forward = self._inference_plan(data, batch_size, stop, sort=self._sample_additive())
        with torch.no_grad():
            batches = data.batches if self._distributed is None else partial(self._distributed.batches, data)
            for step, (xb, yb, swb) in enumerate(batches(batch_size, order, 0, stop)):
                y_pred = forward(xb, step)
                loss = self.compute_loss(yb, y_pred, swb)
                if self._distributed is not None:
                    loss = self._distributed.scale_loss(self, loss, swb)
                self._update_metrics(loss, yb, y_pred, swb)
                if want_end:
                    cb.on_test_batch_end(step, LazyLogs(self._results))
        logs = self._results()
        if cb is not None:
            cb.on_test_end(logs)
        return logs

    def _sample_additive(self) -> bool:
        """Whether the evaluated loss and metrics add up over samples whatever batches they come in: built-in
        losses averaged over the batch (Keras's default reduction) and built-in metrics. A ``"sum"``
        reduction, or a custom function that returns one value per batch, depends on how rows are batched."""
        loss = self.loss
        parts = loss.losses if isinstance(loss, outputs_mod.OutputLosses) else [loss]
        if not all(p is None or (type(p) in losses_mod.LOSS_CLASSES.values()
                                 and p.reduction == "sum_over_batch_size") for p in parts):
            return False
        builtin = tuple(metrics_mod.METRIC_CLASSES.values())
        return all(type(m) in builtin for m in [*self.compiled_metrics, *self._weighted_metrics])

    def _inference_plan(self, data: ArrayData | StreamData, batch_size: int, stop: int, sort: bool = True
                        ) -> tuple[torch.Tensor | None, Callable[[Any, int], Any]]:
        """The row order and the forward ``(batch, step) -> outputs`` of an inference pass over ``stop``
        batches: each batch run from the padding step its rows share, where the model can
        (:mod:`lstmtext.models.shared_padding`), the rows sorted by leading padding first with ``sort``;
        else the data's order and the model's call."""
        shared = (self.shared_padding(data.x) if isinstance(data, ArrayData) and self._distributed is None
                  else None)
        plan = None if shared is None else shared.plan(data.x[:stop * batch_size], batch_size, sort)
        if shared is None or plan is None:
            return None, lambda xb, step: self(xb, training=False)
        order, starts = plan
        return order, lambda xb, step: shared(xb, starts[step])

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: int | str = "auto",
                 sample_weight: Any = None, steps: int | None = None, callbacks: Sequence[Callback] | None = None,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Loss and metrics over ``(x, y)``, as ``keras.Model.evaluate``.

        Returns:
            ``[loss, *metrics]`` in compile order (a plain float when there are no metrics), or a dict
            with ``return_dict=True``.
        """
        self._require_compiled("evaluate")
        verbose = resolve_verbose(verbose)
        batch_size = check_positive_int("batch_size", 32 if batch_size is None else batch_size)
        data = self._data(x, y, sample_weight, None, method="evaluate")
        if data.y is None:
            raise ConfigError("evaluate: y (the targets) is required")
        data = data.to(self._prepare(data, "evaluate", training=False))
        n_steps = data.num_batches(batch_size) if steps is None else min(steps, data.num_batches(batch_size))
        cbs = ([ProgbarLogger(verbose)] if verbose else []) + list(callbacks or [])
        cb = CallbackList(cbs, model=self, params={"verbose": verbose, "epochs": 1,
                                                   "steps": _known(n_steps)})
        logs = self._evaluate_data(data, batch_size, steps, cb)
        if return_dict:
            return logs
        ordered = [logs[n] for n in self.metrics_names]
        return ordered[0] if len(ordered) == 1 else ordered

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = "auto", steps: int | None = None,
                callbacks: Sequence[Callback] | None = None) -> np.ndarray:
        """Model outputs for ``x`` in batches (inference mode: no dropout), as a NumPy array.

        Where the model can (:mod:`lstmtext.models.shared_padding`), the rows run in order of their leading
        padding and each batch from the padding step its rows share; the outputs come back in ``x``'s order.
        """
        verbose = resolve_verbose(verbose)
        batch_size = check_positive_int("batch_size", 32 if batch_size is None else batch_size)
        data = self._data(x, None, None, None, method="predict")
        data = data.to(self._prepare(data, "predict", training=False))
        stop = data.num_batches(batch_size) if steps is None else min(steps, data.num_batches(batch_size))
        cbs = ([ProgbarLogger(verbose)] if verbose else []) + list(callbacks or [])
        cb = CallbackList(cbs, model=self, params={"verbose": verbose, "epochs": 1,
                                                   "steps": _known(stop)})
        self.eval()
        cb.on_predict_begin()
        outs = []
        order, forward = self._inference_plan(data, batch_size, stop)  # outputs put back in row order below
        with torch.no_grad():
            for step, (xb, _, _) in enumerate(data.batches(batch_size, order, 0, stop)):
                outs.append(forward(xb, step))
                cb.on_predict_batch_end(step, None)
        cb.on_predict_end()
        if not outs:
            return np.zeros((0,), dtype=np.float32)

        def rows_in_order(parts: Sequence[torch.Tensor]) -> np.ndarray:
            out = torch.cat(list(parts))
            if order is not None:
                out = torch.empty_like(out).index_copy_(0, order[:len(out)], out)
            return out.cpu().numpy()

        if isinstance(outs[0], torch.Tensor):
            return rows_in_order(outs)
        # Several outputs: one array per output, in the outputs' structure (list or dict), as Keras.
        columns = zip(*(flatten(o) for o in outs))
        return pack_like(outs[0], [rows_in_order(c) for c in columns])

    def train_on_batch(self, x: Any, y: Any, sample_weight: Any = None, class_weight: Mapping[int, float] | None = None,
                       return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One optimizer step on one batch; returns the running ``[loss, *metrics]`` like Keras."""
        self._require_compiled("train_on_batch")
        data = make_data(x, y, sample_weight, class_weight, strings=self.takes_strings())
        data = data.to(self._prepare(data, "train_on_batch", training=True))
        self.train()
        loss, y_pred = self.train_step(data.x, data.y, data.sample_weight)
        self._update_metrics(loss, data.y, y_pred, data.sample_weight)
        self.train_state.global_step += 1
        self.eval()
        logs = self._results()
        if return_dict:
            return logs
        ordered = [logs[n] for n in self.metrics_names]
        return ordered[0] if len(ordered) == 1 else ordered

    def test_on_batch(self, x: Any, y: Any, sample_weight: Any = None, return_dict: bool = False
                      ) -> float | list[float] | dict[str, float]:
        """Loss and metrics on one batch (metrics reset first)."""
        return self.evaluate(x, y, batch_size=len(make_data(x, strings=self.takes_strings())), verbose=0,
                             sample_weight=sample_weight,
                             return_dict=return_dict)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """Model outputs for one batch."""
        return self.predict(x, batch_size=max(1, len(make_data(x, strings=self.takes_strings()))), verbose=0)

    # -- resumable state ------------------------------------------------------------------------
    def training_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(json_state, tensors)``: the loop position, history, RNG states and metric sums.

        ``json_state`` is JSON-able (``trainer.json``); ``tensors`` is safetensors-ready. With the model
        weights and ``optimizer.state_dict()`` this is everything an exact resume needs.
        """
        js: dict[str, Any] = {"train_state": dataclasses.asdict(self.train_state),
                              "rng": {"torch_cpu": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}}
        if torch.cuda.is_available():
            js["rng"]["torch_cuda"] = [base64.b64encode(s.numpy().tobytes()).decode()
                                       for s in torch.cuda.get_rng_state_all()]
        tensors: dict[str, torch.Tensor] = {}
        for m in self._all_metrics():
            for i, v in enumerate(m.variables):
                tensors[f"metrics.{m.name}.{i}"] = v.detach().cpu().contiguous()
        return js, tensors

    def load_training_state(self, js: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`training_state`'s output (call after the metrics are built, e.g. in ``fit``)."""
        try:
            self.train_state = TrainState(**js["train_state"])
            cpu = np.frombuffer(base64.b64decode(js["rng"]["torch_cpu"]), dtype=np.uint8).copy()
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"trainer state: missing or malformed field ({e})") from e
        torch.set_rng_state(torch.from_numpy(cpu))
        if torch.cuda.is_available() and "torch_cuda" in js["rng"]:
            states = [torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())
                      for s in js["rng"]["torch_cuda"]]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
        device = self._target_device()
        for m in self._all_metrics():
            m.build_state(device)
            vals = [tensors.get(f"metrics.{m.name}.{i}") for i in range(len(m.variables))]
            present = [v for v in vals if v is not None]
            if len(present) == len(vals):
                for var, v in zip(m.variables, present):
                    var.copy_(v.to(var.device))
