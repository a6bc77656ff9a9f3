"""Evaluating and describing a trained checkpoint folder: what ``lstmtext evaluate`` and ``summary`` print.

>>> result = evaluate_checkpoint("runs/imdb")                     # doctest: +SKIP
>>> result.metrics                                                # doctest: +SKIP
{'accuracy': 0.87, 'loss': 0.31}
>>> print(describe_checkpoint("runs/imdb"))                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmtext.config import DataConfig
from lstmtext.errors import CheckpointError
from lstmtext.run.data import label_indices, load_run_data, read_labelled_texts


@dataclass
class EvaluationResult:
    """Loss and metrics of a checkpoint on some data.

    Attributes:
        metrics: ``{"loss": ..., "accuracy": ...}`` as ``model.evaluate(..., return_dict=True)``.
        examples: number of examples evaluated.
        data: what was read (file and split).
        seconds: wall-clock time, loading included.
    """

    metrics: dict[str, float]
    examples: int
    data: str
    seconds: float


@dataclass
class _Loaded:
    model: Any
    run: dict[str, Any]
    predictor: Any  # a Predictor when the checkpoint has a vocab.json, else None


def _load(folder: str | os.PathLike[str]) -> _Loaded:
    """The checkpoint's model, its ``run.json`` record (``{}`` if none) and, with a ``vocab.json``, its Predictor."""
    from lstmtext.checkpoint import load_checkpoint
    from lstmtext.models import load_model
    from lstmtext.predictor import Predictor

    ckpt = load_checkpoint(folder, load_training_state=False)
    if ckpt.vocab is not None:
        predictor = Predictor.from_checkpoint(folder)
        return _Loaded(predictor.model, ckpt.run_info or {}, predictor)
    return _Loaded(load_model(ckpt, compile=False), ckpt.run_info or {}, None)


def _compile_for_evaluation(model: Any, run: dict[str, Any], num_classes: int) -> None:
    """Compile with the loss and metrics the run trained with (inferred from the output layer if unrecorded)."""
    train = (run.get("config") or {}).get("train") or {}
    loss = train.get("loss") or ("binary_crossentropy" if num_classes <= 2 and _output_units(model) == 1
                                 else "sparse_categorical_crossentropy")
    model.compile(optimizer="adam", loss=loss, metrics=list(train.get("metrics") or ["accuracy"]))


def _output_units(model: Any) -> int:
    shape = model.compute_output_shape(model.build_input_shape)
    return int(shape[-1])


def evaluate_checkpoint(folder: str | os.PathLike[str], data: str | os.PathLike[str] | None = None, *,
                        batch_size: int = 512, text_column: str | None = None,
                        label_column: str | None = None) -> EvaluationResult:
    """Loss and metrics of a checkpoint folder on the test split it was trained with, or on other data.

    Without ``data``, the data source, vocabulary size and padding recorded in ``run.json`` are loaded
    again exactly as in training and the test split is evaluated. With ``data``, its raw texts are
    encoded with the checkpoint's own tokenizer and padding (see
    :func:`~lstmtext.run.data.read_labelled_texts` for which examples are read) and its labels are
    matched to the checkpoint's class names.

    Args:
        folder: a checkpoint folder written by ``lstmtext train`` (or one with a ``vocab.json``).
        data: other labelled data; None for the run's own test split.
        batch_size: examples per model call.
        text_column, label_column: columns of a CSV / JSON-lines ``data`` (default: the run's, else
            ``text``/``label``).

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        CheckpointError: a missing or damaged checkpoint, or one without the run record needed.
        DataError: missing or unreadable data, or labels the model does not know.
    """
    t0 = time.perf_counter()
    loaded = _load(folder)
    predictor, run = loaded.predictor, loaded.run
    cfg = (run.get("config") or {}).get("data") or {}
    labels = list(predictor.labels) if predictor is not None and predictor.labels is not None else None
    if data is None:
        if not cfg:
            raise CheckpointError(f"{Path(folder) / 'run.json'}: no training config recorded, so the run's test "
                                  "split is unknown; pass --data PATH")
        known = {f.name for f in dataclasses.fields(DataConfig)}
        recorded = {k: v for k, v in cfg.items() if k in known}
        data_cfg = DataConfig(**{**recorded, "archive": (run.get("data") or {}).get("source", cfg.get("archive"))})
        run_data = load_run_data(data_cfg)
        x, y, what = run_data.x_test, run_data.y_test, f"{run_data.source} (test split)"
        labels = labels or run_data.class_names
    else:
        texts, raw_labels, what = read_labelled_texts(
            data, text_column=text_column or cfg.get("text_column", "text"),
            label_column=label_column or cfg.get("label_column", "label"))
        if predictor is None:
            raise CheckpointError(f"{Path(folder) / 'vocab.json'}: missing, so the raw texts of {os.fspath(data)!r} "
                                  "cannot be encoded as the model was trained")
        if labels is None:
            raise CheckpointError(f"{Path(folder) / 'vocab.json'}: no class names recorded, so the labels of "
                                  f"{os.fspath(data)!r} cannot be matched to the model's outputs")
        y = label_indices(raw_labels, labels, what)
        x = predictor.pad(predictor.encode(texts))
    model = loaded.model
    _compile_for_evaluation(model, run, len(labels))
    metrics = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    return EvaluationResult({k: float(v) for k, v in metrics.items()}, len(y), what, time.perf_counter() - t0)


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def describe_checkpoint(folder: str | os.PathLike[str]) -> str:
    """Keras's summary table of a checkpoint's model followed by what its ``run.json`` records.

    Returns:
        Text: the table, then the run (name, date, seed, device, data, classes, padding, per-epoch
        history, test metrics, library versions, command line) and the files with their sizes.
    """
    loaded = _load(folder)
    predictor, run = loaded.predictor, loaded.run
    lines: list[str] = []
    loaded.model.summary(print_fn=lines.append)
    out = ["\n".join(lines), ""]

    def row(key: str, value: Any) -> None:
        out.append(f"{key + ':':<16}{value}")

    cfg = run.get("config") or {}
    row("checkpoint", Path(folder))
    if cfg.get("name"):
        row("config", cfg["name"])
    for key in ("saved_at", "seed", "device"):
        if run.get(key) is not None:
            row(key.replace("_", " "), run[key])
    data = run.get("data") or {}
    if data:
        row("data", f"{data.get('source')} ({_count(data.get('train_examples'))} train / "
                    f"{_count(data.get('test_examples'))} test examples)")
    if predictor is None:
        row("vocabulary", "(no vocab.json: the model cannot read raw text)")
    else:
        meta = predictor.metadata
        row("classes", ", ".join(meta["labels"]) if meta.get("labels") else "(not recorded)")
        row("vocabulary", f"{meta['vocab_size']:,} words; ids below {predictor.tokenizer.num_words or 'all'} kept")
        row("sequences", f"maxlen {meta['maxlen']}, padding {meta['padding']!r}, truncating {meta['truncating']!r}")
    history = run.get("metrics") or {}
    if history:
        epochs = max(len(v) for v in history.values())
        row("epochs", epochs)
        for k in sorted(history):
            row(f"  {k}", " ".join(f"{v:.4f}" for v in history[k]))
    test = run.get("test_metrics") or {}
    if test:
        row("test", " - ".join(f"{k}: {v:.4f}" for k, v in sorted(test.items())))
    if run.get("seconds") is not None:
        row("run time", f"{run['seconds']:.1f} s")
    versions = run.get("library_versions") or {}
    if versions:
        row("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform"))
    if run.get("command"):
        row("command", " ".join(str(a) for a in run["command"]))
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    row("files", ", ".join(f"{p.name} ({p.stat().st_size:,} B)" for p in files))
    return "\n".join(out)
