"""Writing a run's ``report/`` folder: figures, ``report.json`` (the numbers) and ``report.html``.

Layout, inside a checkpoint folder::

    report/
      loss.png  accuracy.png ...   per-epoch curves, train and validation (one per metric)
      confusion_matrix.png  roc.png  the test split (when test data was given)
      report.json                  everything the page shows: history, test predictions, examples
      report.html                  one self-contained page

``report.json`` keeps the test labels and probabilities, so :func:`rebuild_report` (``lstmtext report
DIR``) redraws the page without the data or the model.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lstmtext.checkpoint.limits import JSON_LIMITS
from lstmtext.checkpoint.safejson import read_json
from lstmtext.errors import CheckpointError, DataError
from lstmtext.report import metrics as M
from lstmtext.report.html import render_html
from lstmtext.report.plots import plot_confusion, plot_history, plot_roc
from lstmtext.utils.io import atomic_write_json, atomic_write_text

REPORT_DIR, REPORT_JSON, REPORT_HTML = "report", "report.json", "report.html"
FORMAT = "lstmtext.report"


def _finite(v: Any) -> Any:
    """JSON has no NaN: store it as None (the page shows n/a)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _unfinite(v: Any) -> Any:
    if v is None:
        return float("nan")
    if isinstance(v, list):
        return [_unfinite(x) for x in v]
    return v


def _layer_rows(config: Mapping[str, Any] | None, model: Any = None) -> list[dict[str, Any]]:
    layers = (config or {}).get("config", {}).get("layers", []) if isinstance(config, Mapping) else []
    params = {}
    if model is not None:
        params = {la.name: sum(int(w.numel()) for w in la.weights) for la in getattr(model, "layers", [])}
    rows = []
    for spec in layers:
        cfg = spec.get("config", {}) if isinstance(spec, Mapping) else {}
        keys = ("input_dim", "output_dim", "units", "rate", "activation", "return_sequences", "mask_zero",
                "merge_mode", "go_backwards", "mask_value", "batch_shape")
        details = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg and cfg[k] not in (None, False))
        if spec.get("class_name") == "Bidirectional":
            inner = cfg.get("layer", {}).get("config", {})
            details = f"{details}, layer=LSTM({inner.get('units')}, return_sequences={inner.get('return_sequences')})"
        rows.append({"name": cfg.get("name", ""), "class": spec.get("class_name", ""), "details": details,
                     "params": params.get(cfg.get("name"), "")})
    return rows


def predictions_section(outputs: Any, y: Any, *, labels: Sequence[str] | None = None, from_logits: bool = False,
                        texts: Sequence[str | None] | None = None, max_examples: int = 6) -> dict[str, Any]:
    """The test part of a report from model outputs and targets.

    Args:
        outputs: model outputs, ``(N, 1)`` sigmoid or ``(N, C)`` softmax (logits with ``from_logits``).
        y: targets: ids ``(N,)``/``(N, 1)`` or one-hot ``(N, C)``.
        labels: class names (default ``"0"``, ``"1"``, ...).
        texts: the text of each sample, for the misclassified examples (None entries: unknown).
        max_examples: how many misclassified examples to keep (most confident first).

    Returns:
        ``{"labels", "y_true", "probabilities", "metrics", "misclassified"}``.
    """
    probs = M.class_probabilities(outputs, from_logits)
    n = probs.shape[1]
    names = [str(x) for x in labels] if labels is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise DataError(f"labels: {len(names)} names {names} for a model with {n} classes")
    y_true = M.class_ids(y, n)
    if len(y_true) != len(probs):
        raise DataError(f"test data: {len(y_true)} targets for {len(probs)} model outputs")
    pred = M.predicted_ids(probs)
    wrong = np.nonzero(pred != y_true)[0]
    conf = probs[wrong, pred[wrong]]
    chosen = wrong[np.argsort(-conf, kind="stable")[:max_examples]]
    examples = [{"index": int(i), "true": int(y_true[i]), "predicted": int(pred[i]),
                 "probability": float(probs[i, pred[i]]),
                 "text": None if texts is None else texts[int(i)]} for i in chosen]
    return {"labels": names, "y_true": y_true.tolist(), "probabilities": np.round(probs, 6).tolist(),
            "metrics": M.test_summary(y_true, probs), "misclassified": examples}


def _draw(report: dict[str, Any], folder: Path) -> dict[str, str]:
    """Draw every figure of ``report`` into ``folder``; returns ``{caption: file name}``."""
    plots: dict[str, str] = {}
    history = report.get("history") or {}
    for metric in [k for k in history if not k.startswith("val_")]:
        file = f"{metric}.png"
        plot_history(history, metric, folder / file)
        plots[f"{metric} per epoch (train and validation)"] = file
    test = report.get("test")
    if test:
        y_true = np.asarray(test["y_true"], dtype=np.int64)
        probs = np.asarray(test["probabilities"], dtype=np.float64).reshape(len(y_true), len(test["labels"]))
        plot_confusion(M.confusion_matrix(y_true, M.predicted_ids(probs), probs.shape[1]), test["labels"],
                       folder / "confusion_matrix.png")
        plots["confusion matrix (test split)"] = "confusion_matrix.png"
        plot_roc(y_true, probs, test["labels"], folder / "roc.png")
        plots["ROC curve (test split)"] = "roc.png"
    return plots


def _render(report: dict[str, Any], directory: Path) -> Path:
    folder = directory / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    report["plots"] = _draw(report, folder)
    atomic_write_json(folder / REPORT_JSON, _finite(report))
    return atomic_write_text(folder / REPORT_HTML, render_html(report, folder))


def write_report(
    directory: str | os.PathLike[str],
    *,
    history: Mapping[str, Sequence[float]] | None = None,
    model: Any = None,
    test_data: tuple[Any, Any] | None = None,
    texts: Sequence[str | None] | None = None,
    tokenizer: Any = None,
    labels: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    run_info: Mapping[str, Any] | None = None,
    test_metrics: Mapping[str, float] | None = None,
    batch_size: int = 256,
) -> Path:
    """Write ``directory/report/``: curves, test confusion matrix and ROC, ``report.json`` and ``report.html``.

    Args:
        directory: the run's checkpoint folder (created if needed).
        history: ``history.history`` of the run (default: ``model.train_state.history``).
        model: the trained model (predicts ``test_data``; gives the config and parameter counts).
        test_data: ``(x_test, y_test)``: padded ids and targets.
        texts: the raw text of each test sample, shown for misclassified examples.
        tokenizer: used instead of ``texts`` to show the (decoded) words of misclassified examples.
        labels: class names, e.g. ``["negative", "positive"]``.
        config: the model's ``{"class_name", "config"}`` (default: from ``model``, else ``config.json``).
        run_info: the run record (default: ``run.json`` in ``directory`` when present).
        test_metrics: ``model.evaluate(..., return_dict=True)`` on ``test_data`` when already computed
            (default: evaluated here for a compiled model).
        batch_size: prediction batch size.

    Returns:
        The path of ``report.html``.

    >>> history = model.fit(x, y, validation_split=0.2, epochs=3)  # doctest: +SKIP
    >>> write_report("runs/imdb", history=history.history, model=model, test_data=(x_test, y_test))  # doctest: +SKIP
    """
    directory = Path(directory)
    on_disk = _read_folder(directory) if directory.is_dir() else {}
    if history is None and model is not None:
        history = getattr(getattr(model, "train_state", None), "history", None)
    if config is None and model is not None:
        from lstmtext.layers import serialize

        config = serialize(model)
    config = config if config is not None else on_disk.get("config")
    test = None
    if test_data is not None:
        if model is None:
            raise DataError("write_report: test_data needs the model to predict it")
        x, y = test_data
        if texts is not None and len(texts) != len(x):
            raise DataError(f"write_report: {len(texts)} texts for {len(x)} test samples")
        outputs = model.predict(x, batch_size=batch_size, verbose=0)
        from_logits = _outputs_logits(model)
        shown = texts
        if shown is None and tokenizer is not None:
            shown = _Decoded(tokenizer, x)
        test = predictions_section(outputs, y, labels=labels, from_logits=from_logits, texts=shown)
        if test_metrics is not None:
            test["evaluate"] = {k: float(v) for k, v in test_metrics.items()}
        elif getattr(model, "compiled", False):
            # the compiled loss and metrics, as model.evaluate gives them
            test["evaluate"] = {k: float(v) for k, v in
                                model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True).items()}
    report = {
        "format": FORMAT,
        "version": 1,
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "history": {k: [float(v) for v in vs] for k, vs in (history or on_disk.get("history") or {}).items()},
        "model": {"name": getattr(model, "name", None) or (config or {}).get("config", {}).get("name"),
                  "config": config, "layers": _layer_rows(config, model),
                  "params": int(model.count_params()) if model is not None and getattr(model, "built", False)
                  else None},
        "run": dict(run_info) if run_info is not None else on_disk.get("run"),
        "test": test,
    }
    return _render(report, directory)


def run_report(directory: str | os.PathLike[str], **kwargs: Any) -> Path | None:
    """:func:`write_report` for the end of a training run: without matplotlib it warns and returns None
    (the run's checkpoint is already saved; ``lstmtext report DIR`` can draw it later)."""
    from lstmtext.errors import ConfigError

    try:
        return write_report(directory, **kwargs)
    except ConfigError as e:
        if "matplotlib" not in str(e):
            raise
        warnings.warn(f"no training report written: {e}", stacklevel=2)
        return None


class _Decoded(Sequence):
    """The words of test samples, decoded on demand (only the few misclassified ones are shown)."""

    def __init__(self, tokenizer: Any, x: Any) -> None:
        self.tokenizer, self.x = tokenizer, x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: Any) -> Any:
        row = [int(v) for v in np.asarray(self.x[i]).reshape(-1) if int(v) != 0]
        return self.tokenizer.sequences_to_texts([row])[0]


def _outputs_logits(model: Any) -> bool:
    from lstmtext.layers import activations

    layers = list(getattr(model, "layers", []))
    act = getattr(layers[-1], "activation", None) if layers else None
    return act is activations.linear


def _read_json(path: Path) -> Any:
    """A JSON file of the folder, or None if absent; bounded, strict and counted like every checkpoint file
    (:mod:`lstmtext.checkpoint.limits`), so a hostile folder gets a typed error, fast."""
    if not path.is_file():
        return None
    return read_json(path, limits=JSON_LIMITS.get(path.name, JSON_LIMITS["run.json"]), expect=None)


def _history_of(run: Any, trainer: Any) -> dict[str, list[float]] | None:
    candidates = [run.get("metrics") if isinstance(run, dict) else None]
    if isinstance(trainer, dict):
        for holder in (trainer.get("state"), trainer.get("train_state"), trainer):
            if isinstance(holder, dict):
                candidates.append(holder.get("history"))
                if isinstance(holder.get("train_state"), dict):
                    candidates.append(holder["train_state"].get("history"))
    for c in candidates:
        if isinstance(c, dict) and c and all(isinstance(v, list) for v in c.values()):
            return {str(k): [_number(x) for x in v] for k, v in c.items()}
    return None


def _number(x: Any) -> float:
    """A history value: a number, a checkpoint's ``{"__float__": "nan"}`` marker, or NaN for anything else."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    if isinstance(x, dict) and x.get("__float__") in ("nan", "inf", "-inf"):
        return float(x["__float__"])
    return float("nan")


def _read_folder(directory: Path) -> dict[str, Any]:
    """Config, run record and history found in a checkpoint folder (either checkpoint format)."""
    run = _read_json(directory / "run.json")
    trainer = _read_json(directory / "trainer.json")
    config = _read_json(directory / "config.json")
    return {"config": config if isinstance(config, dict) else None, "run": run if isinstance(run, dict) else None,
            "history": _history_of(run, trainer)}


def rebuild_report(directory: str | os.PathLike[str]) -> Path:
    """Redraw ``directory/report/`` from its ``report.json`` and the folder's ``config.json``/``run.json``.

    A folder without a report (e.g. saved by ``model.save``) gets one from its training history; the
    test section needs the data, so it appears only in reports written with ``test_data``.

    Returns:
        The path of ``report.html``.

    Raises:
        CheckpointError: the folder does not exist, or it has neither a report nor a training history.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint folder")
    on_disk = _read_folder(directory)
    saved = _read_json(directory / REPORT_DIR / REPORT_JSON)
    if saved is not None and (not isinstance(saved, dict) or saved.get("format") != FORMAT):
        raise CheckpointError(f"{directory / REPORT_DIR / REPORT_JSON}: not an lstmtext report "
                              f'(expected "format": "{FORMAT}")')
    if saved is None and on_disk["history"] is None and on_disk["config"] is None:
        raise CheckpointError(f"{directory}: no report/report.json, config.json or training history to build a "
                              "report from")
    report = dict(saved or {"format": FORMAT, "version": 1, "test": None})
    report["created"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if on_disk["history"] and not report.get("history"):
        report["history"] = on_disk["history"]
    report["history"] = {k: _unfinite(v) for k, v in (report.get("history") or {}).items()}
    if on_disk["config"] is not None:
        model = dict(report.get("model") or {})
        params = {row["name"]: row.get("params", "") for row in model.get("layers", [])}
        model.update(config=on_disk["config"], name=on_disk["config"].get("config", {}).get("name"))
        model["layers"] = [{**row, "params": params.get(row["name"], "")} for row in _layer_rows(on_disk["config"])]
        report["model"] = model
    if on_disk["run"] is not None:
        report["run"] = on_disk["run"]
    if report.get("test"):
        report["test"]["metrics"] = {k: _unfinite(v) for k, v in report["test"]["metrics"].items()}
        report["test"]["probabilities"] = _unfinite(report["test"]["probabilities"])
    return _render(report, directory)
