"""Keras's progress output: a bar per step (``verbose=1``) or one line per epoch (``verbose=2``).

The format follows ``keras.utils.Progbar``:
``157/157 ━━━━━━━━━━━━━━━━━━━━ 5s 30ms/step - accuracy: 0.7412 - loss: 0.5123 - val_accuracy: ...``.
Metric values are read (a host synchronisation) only when the bar is redrawn, at most every
``interval`` seconds, so the bar costs nothing on the steps in between.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from lstmtext.kernels.build import build_seconds
from lstmtext.training.callbacks import Callback


def _format_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"
    return str(v)


def _format_time_per_unit(t: float, unit: str) -> str:
    if t >= 1 or t == 0:
        return f" {t:.0f}s/{unit}"
    if t >= 1e-3:
        return f" {t * 1e3:.0f}ms/{unit}"
    return f" {t * 1e6:.0f}us/{unit}"


class Progbar:
    """A Keras-style progress bar for ``target`` steps.

    Args:
        target: number of steps (``None`` if unknown).
        verbose: 1 (redrawn bar) or 2 (one line when finished).
        width: bar width in characters.
        interval: minimum seconds between redraws (the bar is always drawn at the end).
        stream: where to write (standard output).
    """

    def __init__(self, target: int | None, verbose: int = 1, width: int = 20, interval: float | None = None,
                 stream: TextIO | None = None, unit_name: str = "step") -> None:
        self.target, self.verbose, self.width, self.unit_name = target, verbose, width, unit_name
        self.stream = stream or sys.stdout
        self._dynamic = bool(getattr(self.stream, "isatty", lambda: False)())
        # A terminal is redrawn in place (Keras's 0.05 s); a log file gets a line every 10 s.
        self.interval = interval if interval is not None else (0.05 if self._dynamic else 10.0)
        self._start = time.perf_counter()
        self._build_at_start = build_seconds()  # a first-use kernel build during the bar is not step time
        self._last_update = 0.0
        self._prev_width = 0

    def _color(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self._dynamic else text

    def update(self, current: int, logs: Mapping[str, Any] | None = None, finalize: bool | None = None) -> None:
        """Show step ``current`` with ``logs`` (read only when drawing)."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.perf_counter()
        if self.verbose == 1 and not finalize and now - self._last_update < self.interval:
            return
        if self.verbose == 2 and not finalize:
            return
        self._last_update = now
        elapsed = now - self._start - (build_seconds() - self._build_at_start)
        per_step = elapsed / current if current else 0.0
        values = "".join(f" - {k}: {_format_value(v)}" for k, v in (logs or {}).items())
        if self.verbose == 2:
            n = int(math.log10(self.target)) + 1 if self.target else 1
            line = f"{current:{n}d}/{self.target} - {elapsed:.0f}s -"
            self.stream.write(line + _format_time_per_unit(per_step, self.unit_name) + values + "\n")
            self.stream.flush()
            return
        if self.target:
            n = int(math.log10(self.target)) + 1
            done = int(self.width * current / self.target)
            bar = (self._color("1", f"{current:{n}d}/{self.target}") + " "
                   + self._color("32", "━" * done) + self._color("37", "━" * (self.width - done)))
            plain = n * 2 + 2 + self.width
        else:
            bar = f"{current:7d}/Unknown"
            plain = len(bar)
        if self.target and not finalize:
            eta = per_step * (self.target - current)
            if eta > 3600:
                eta_s = f"{int(eta // 3600)}:{int(eta % 3600) // 60:02d}:{int(eta % 60):02d}"
            elif eta > 60:
                eta_s = f"{int(eta // 60)}:{int(eta % 60):02d}"
            else:
                eta_s = f"{int(eta)}s"
        else:
            eta_s = f"{elapsed:.0f}s"
        info = " " + self._color("1", eta_s) + _format_time_per_unit(per_step, self.unit_name) + values
        width = plain + 1 + len(eta_s) + len(_format_time_per_unit(per_step, self.unit_name)) + len(values)
        if self._dynamic:
            msg = "\r" + bar + info + " " * max(0, self._prev_width - width)
            self._prev_width = width
            if finalize:
                msg += "\n"
        else:
            msg = bar + info + "\n"
        self.stream.write(msg)
        self.stream.flush()


def _prepare_fused_layers(model: Any) -> None:
    """Asks each layer with a fused path whether it applies, which builds the compiled kernel on first use
    (it prints one line saying so) before ``Epoch 1/n`` rather than inside the first epoch's bar."""
    modules = getattr(model, "modules", None)
    if modules is None:
        return
    for layer in modules():
        probe = getattr(layer, "fused_impediment", None)
        if callable(probe):
            param = next(layer.parameters(), None)
            probe(param.device if param is not None else "cpu")
            return  # one probe loads the kernel for every layer


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and a :class:`Progbar` per epoch (added by ``fit``/``evaluate``/``predict``
    when ``verbose`` is not 0).

    Args:
        verbose: 1 for a bar per step, 2 for one line per epoch.
        stream: where to write (standard output).
    """

    def __init__(self, verbose: int = 1, stream: TextIO | None = None) -> None:
        super().__init__()
        self.verbose, self.stream = verbose, stream
        self._bar: Progbar | None = None
        self._in_fit = False
        self._seen = 0

    def _new_bar(self, steps: int | None) -> None:
        self._bar = Progbar(steps, verbose=self.verbose, stream=self.stream)
        self._seen = 0

    def on_train_begin(self, logs=None):
        self._in_fit = True
        _prepare_fused_layers(self.model)

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._new_bar(self.params.get("steps"))
        if self.params.get("epochs", 1) > 1:
            stream = self.stream or sys.stdout
            stream.write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")
            stream.flush()

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self._bar is not None:
            self._bar.update(self._seen, logs, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.update(self.params.get("steps") or self._seen, logs, finalize=True)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._new_bar(self.params.get("steps"))

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit and self._bar is not None:
            self._seen = batch + 1
            self._bar.update(self._seen, logs, finalize=False)

    def on_test_end(self, logs=None):
        if not self._in_fit and self._bar is not None:
            self._bar.update(self.params.get("steps") or self._seen, logs, finalize=True)

    def on_predict_begin(self, logs=None):
        self._new_bar(self.params.get("steps"))

    def on_predict_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self._bar is not None:
            self._bar.update(self._seen, None, finalize=False)

    def on_predict_end(self, logs=None):
        if self._bar is not None:
            self._bar.update(self.params.get("steps") or self._seen, None, finalize=True)
