"""Training callbacks of the reports: :class:`ReportCallback` (``report/`` at the end of a run) and
:class:`TensorBoard` (per-epoch scalars through ``torch.utils.tensorboard.SummaryWriter``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lstmtext.errors import ConfigError
from lstmtext.training.callbacks import Callback


class ReportCallback(Callback):
    """Writes ``directory/report/`` (see :func:`~lstmtext.report.write_report`) when training ends.

    Args:
        directory: the run's checkpoint folder.
        test_data: optional ``(x_test, y_test)`` for the confusion matrix, ROC curve and examples.
        texts: optional raw text of each test sample (shown for misclassified examples).
        tokenizer: optional tokenizer to decode the test ids when ``texts`` is not given.
        labels: optional class names.

    A missing matplotlib does not stop the run: the callback warns and writes nothing. Saving a checkpoint
    replaces its whole folder, so save before the report is written (e.g. with ``ModelCheckpoint``), or call
    :func:`~lstmtext.report.write_report` after the last save.

    >>> model.fit(x, y, epochs=3, validation_split=0.2,
    ...           callbacks=[ReportCallback("runs/imdb", test_data=(x_test, y_test))])  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike[str], *, test_data: tuple[Any, Any] | None = None,
                 texts: Sequence[str] | None = None, tokenizer: Any = None,
                 labels: Sequence[str] | None = None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.test_data, self.texts, self.tokenizer, self.labels = test_data, texts, tokenizer, labels
        self.path: Path | None = None

    def on_train_end(self, logs=None):
        from lstmtext.report.build import run_report

        self.path = run_report(self.directory, model=self.model, test_data=self.test_data, texts=self.texts,
                               tokenizer=self.tokenizer, labels=self.labels)


def summary_writer(log_dir: str | os.PathLike[str]) -> Any:
    """``torch.utils.tensorboard.SummaryWriter(log_dir)``, or a :class:`ConfigError` saying how to get it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch's tensorboard module needs the tensorboard package
        raise ConfigError(f"--tensorboard {os.fspath(log_dir)}: TensorBoard logging needs the tensorboard package: "
                          "pip install 'lstmtext[tensorboard]'") from e
    return SummaryWriter(log_dir=os.fspath(log_dir))


class TensorBoard(Callback):
    """Logs the epoch metrics for TensorBoard, as ``keras.callbacks.TensorBoard`` lays them out.

    Scalars ``epoch_<metric>`` go to ``log_dir/train`` and (for ``val_*`` logs) ``log_dir/validation``,
    one point per epoch; with ``update_freq`` a number, ``batch_loss`` every that many steps too.

    Args:
        log_dir: the folder ``tensorboard --logdir`` reads.
        update_freq: ``"epoch"`` or a number of training steps between batch-loss points.

    Raises:
        ConfigError: the ``tensorboard`` package is not installed (``pip install 'lstmtext[tensorboard]'``).
    """

    def __init__(self, log_dir: str | os.PathLike[str] = "logs", update_freq: str | int = "epoch") -> None:
        super().__init__()
        if update_freq != "epoch" and (not isinstance(update_freq, int) or isinstance(update_freq, bool)
                                       or update_freq <= 0):
            raise ConfigError(f"TensorBoard: update_freq must be 'epoch' or a positive integer, got {update_freq!r}")
        self.log_dir = Path(log_dir)
        self.update_freq = update_freq
        self._writers: dict[str, Any] = {}
        self._step = 0
        _import_check()  # fail before training starts, not after the first epoch

    def _writer(self, split: str) -> Any:
        if split not in self._writers:
            self._writers[split] = summary_writer(self.log_dir / split)
        return self._writers[split]

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.update_freq != "epoch" and self._step % int(self.update_freq) == 0 and logs is not None:
            self._writer("train").add_scalar("batch_loss", float(logs["loss"]), self._step)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(split).add_scalar(f"epoch_{name}", float(value), epoch)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers.clear()


def _import_check() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError as e:
        raise ConfigError("TensorBoard logging needs the tensorboard package: "
                          "pip install 'lstmtext[tensorboard]'") from e
