"""Keras callbacks: hooks into ``fit``/``evaluate``/``predict`` with Keras's names and arguments.

``logs`` passed to batch hooks is a lazy mapping: reading it computes the running metric values
(a host synchronisation), so callbacks that ignore it cost nothing per step. Epoch logs are plain
dicts of Python floats, sorted by name like Keras's.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lstmtext.checkpoint.folder import delete_checkpoint
from lstmtext.errors import ConfigError
from lstmtext.utils.io import atomic_write_text

_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end",
          "on_predict_batch_begin", "on_predict_batch_end")


class Callback:
    """Base class; override any ``on_*`` hook. ``self.model`` and ``self.params`` are set by ``fit``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


def _overrides(callback: Callback, hook: str) -> bool:
    # A bound method of the base class is a no-op; anything else (subclass method, function set on
    # the instance by LambdaCallback) must be called.
    return getattr(getattr(callback, hook), "__func__", None) is not getattr(Callback, hook)


class CallbackList:
    """Calls a list of callbacks; batch hooks only reach callbacks that override them (cheap loops)."""

    def __init__(self, callbacks: Iterable[Callback], model: Any = None, params: dict[str, Any] | None = None):
        self.callbacks = list(callbacks)
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise ConfigError(f"callbacks: expected Callback objects, got {type(c).__name__}")
            if model is not None:
                c.set_model(model)
            if params is not None:
                c.set_params(params)
        self._batch = {h: [getattr(c, h) for c in self.callbacks if _overrides(c, h)] for h in _HOOKS}

    def wants(self, hook: str) -> bool:
        return bool(self._batch[hook])

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        # Like Keras, every hook receives ``logs`` (an empty dict when there are none), so functions
        # given to LambdaCallback can always take it.
        if hook in _HOOKS:
            fns = self._batch[hook]

            def call_batch(batch: int, logs: Any = None) -> None:
                logs = {} if logs is None else logs
                for f in fns:
                    f(batch, logs)
            return call_batch
        takes_index = hook in ("on_epoch_begin", "on_epoch_end")

        def call(*args: Any) -> None:
            if len(args) == (1 if takes_index else 0):
                args = (*args, {})
            for c in self.callbacks:
                getattr(c, hook)(*args)
        return call


class History(Callback):
    """Records epoch logs: ``history.history["val_loss"]`` is a list with one float per epoch.

    ``fit`` returns it (and sets ``model.history``); ``history.epoch`` lists the epoch indices.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def on_train_end(self, logs=None):
        if self.model is not None:
            self.model.history = self


class _MonitorCallback(Callback):
    def __init__(self, monitor: str, mode: str, baseline: float | None, min_delta: float) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.baseline = monitor, mode, baseline
        self.min_delta = abs(float(min_delta))
        self._greater: bool | None = None

    def _direction(self) -> bool:
        """True when larger values of the monitored quantity are better."""
        if self.mode != "auto":
            return self.mode == "max"
        name = self.monitor.removeprefix("val_")
        if name == "loss":
            return False
        for m in getattr(self.model, "compiled_metrics", []) or []:
            if m.name == name and getattr(m, "direction", None) in ("up", "down"):
                return m.direction == "up"
        raise ConfigError(
            f"{type(self).__name__}: cannot tell whether monitor={self.monitor!r} should go up or down; "
            "pass mode='max' or mode='min'"
        )

    def _is_improvement(self, current: float, reference: float | None) -> bool:
        if self._greater is None:
            self._greater = self._direction()
        if reference is None:
            return True
        if self._greater:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def _current(self, logs: Mapping[str, Any] | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__}: monitor {self.monitor!r} is not in the logs; "
                f"available: {', '.join(logs or {})}", stacklevel=3,
            )
        return value


class EarlyStopping(_MonitorCallback):
    """Stops training when ``monitor`` has stopped improving, as ``keras.callbacks.EarlyStopping``.

    Args:
        monitor: logged quantity (``"val_loss"``).
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        verbose: 1 prints a message when stopping.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        baseline: a value the quantity must beat.
        restore_best_weights: put back the weights of the best epoch at the end.
        start_from_epoch: epochs to wait before monitoring.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, baseline, min_delta)
        self.patience, self.verbose = int(patience), verbose
        self.restore_best_weights, self.start_from_epoch = bool(restore_best_weights), int(start_from_epoch)

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best: float | None = self.baseline
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Only a value that also beats the baseline resets the patience, as in Keras.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(_MonitorCallback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` stops improving (Keras's rules).

    Args:
        monitor: logged quantity (``"val_loss"``).
        factor: new_lr = lr * factor (< 1).
        patience: epochs without improvement before reducing.
        verbose: 1 prints a message on each reduction.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        min_delta: smallest change that counts as an improvement (1e-4).
        cooldown: epochs to wait after a reduction.
        min_lr: lower bound of the learning rate.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, None, min_delta)
        if not 0.0 <= factor < 1.0:
            raise ConfigError(f"ReduceLROnPlateau: factor must be in [0, 1), got {factor!r}")
        self.factor, self.patience, self.verbose = float(factor), int(patience), verbose
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)

    def on_train_begin(self, logs=None):
        self.best: float | None = None
        self.wait, self.cooldown_counter = 0, 0

    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = float(opt.learning_rate)
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > float(np.float32(self.min_lr)):
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class ModelCheckpoint(_MonitorCallback):
    """Saves the model (or its weights) during training, as ``keras.callbacks.ModelCheckpoint``.

    ``filepath`` may hold format fields filled from the epoch (1-based) and the logs, e.g.
    ``"ckpt/epoch{epoch:02d}-{val_loss:.3f}"``. Full saves go through ``model.save(path)`` (a checkpoint
    folder that ``fit(resume_from=path)`` continues from); ``save_weights_only`` uses
    ``model.save_weights(path)``.

    Args:
        filepath: where to save (a folder for full saves, a ``.safetensors`` file for weights).
        monitor: logged quantity for ``save_best_only``.
        verbose: 1 prints a message per save.
        save_best_only: save only when ``monitor`` improves.
        save_weights_only: save only the weights.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        save_freq: ``"epoch"`` or a number of training steps between saves.
        initial_value_threshold: a value the monitored quantity must beat for the first save.
        keep_last: keep only the newest N checkpoints written by this callback (None: keep all).
    """

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None,
                 keep_last: int | None = None) -> None:
        super().__init__(monitor, mode, initial_value_threshold, 0)
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq <= 0):
            raise ConfigError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive integer, got {save_freq!r}")
        if keep_last is not None and (not isinstance(keep_last, int) or keep_last <= 0):
            raise ConfigError(f"ModelCheckpoint: keep_last must be a positive integer or None, got {keep_last!r}")
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        self.save_freq, self.keep_last = save_freq, keep_last
        self.best: float | None = initial_value_threshold
        self._written: list[str] = []
        self._batches = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % int(self.save_freq) == 0:
            self._save(self._epoch, dict(logs or {}), batch=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def _save(self, epoch: int, logs: Mapping[str, Any], batch: int | None = None) -> None:
        try:
            path = self.filepath.format(epoch=epoch + 1, batch=None if batch is None else batch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f"ModelCheckpoint: filepath {self.filepath!r} names a field not in the logs: {e}") from e
        if self.save_best_only:
            current = self._current(logs)
            if current is None or (isinstance(current, float) and math.isnan(current)):
                return
            if not self._is_improvement(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best} to {current}, saving to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self._rotate(path)

    def _rotate(self, path: str) -> None:
        if path in self._written:
            self._written.remove(path)
        self._written.append(path)
        if self.keep_last is None:
            return
        while len(self._written) > self.keep_last:
            old = Path(self._written.pop(0))
            if old.is_dir():
                delete_checkpoint(old)  # manifest first: a crash midway never leaves a committed-looking half
            elif old.exists():
                old.unlink()


class CSVLogger(Callback):
    """Writes the epoch logs to a CSV file (one row per epoch, rewritten atomically after each epoch).

    Args:
        filename: the CSV file.
        separator: the field separator.
        append: keep the rows of an existing file (resumed training) instead of starting afresh.
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, bool(append)
        self._rows: list[dict[str, Any]] = []
        self._keys: list[str] | None = None

    def on_train_begin(self, logs=None):
        self._rows, self._keys = [], None
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f, delimiter=self.sep)
                self._rows = list(reader)
                self._keys = [k for k in (reader.fieldnames or []) if k != "epoch"] or None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self._keys is None:
            self._keys = sorted(logs)
        row = {"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}}
        self._rows.append(row)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["epoch", *self._keys], delimiter=self.sep, lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self._rows)
        atomic_write_text(self.filename, buf.getvalue())


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Args:
        on_epoch_begin, on_epoch_end: ``f(epoch, logs)``.
        on_train_begin, on_train_end: ``f(logs)``.
        on_train_batch_begin, on_train_batch_end: ``f(batch, logs)``.
        **kwargs: any other ``on_*`` hook.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs: Callable[..., Any]) -> None:
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for hook, fn in given.items():
            if not hook.startswith("on_") or not hasattr(Callback, hook):
                raise ConfigError(f"LambdaCallback: unknown hook {hook!r}")
            if fn is not None:
                setattr(self, hook, fn)


class TerminateOnNaN(Callback):
    """Stops training when the loss becomes NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
