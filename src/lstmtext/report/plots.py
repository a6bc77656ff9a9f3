"""The report's figures as PNG files, drawn on matplotlib's Agg canvas (no display needed)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lstmtext.errors import ConfigError
from lstmtext.report.metrics import auc, roc_curve
from lstmtext.utils.io import atomic_write_bytes

_TRAIN, _VAL = "#1f77b4", "#d62728"


def _figure(width: float = 5.6, height: float = 3.6) -> tuple[Any, Any]:
    # A bare Figure on an Agg canvas: no pyplot, no display, and an interactive session's backend is untouched.
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # the optional "report" extra
        raise ConfigError("training reports need matplotlib: pip install 'lstmtext[report]'") from e
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def plot_history(history: Mapping[str, Sequence[float]], metric: str, path: str | os.PathLike[str]) -> Path:
    """Plot ``metric`` and ``val_<metric>`` per epoch (1-based) as a PNG.

    Args:
        history: Keras's ``history.history`` (``{"loss": [...], "val_loss": [...], ...}``).
        metric: e.g. ``"loss"`` or ``"accuracy"``.
        path: the PNG file (written atomically).

    Returns:
        ``path``.
    """
    fig, ax = _figure()
    for key, label, color in ((metric, "train", _TRAIN), (f"val_{metric}", "validation", _VAL)):
        values = [float(v) for v in history.get(key, [])]
        if values:
            ax.plot(range(1, len(values) + 1), values, marker="o", color=color, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch")
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted class) with counts and row shares."""
    m = np.asarray(matrix)
    n = len(labels)
    fig, ax = _figure(1.6 + 1.1 * n, 1.2 + 1.0 * n)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(m[i, j]):,}\n{share[i, j]:.1%}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(n), labels=list(labels))
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (test)")
    return _save(fig, path)


def plot_roc(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """Draw the ROC curve of class 1 (binary) or one curve per class, one-vs-rest (multi-class)."""
    fig, ax = _figure(4.6, 4.2)
    classes = [1] if probs.shape[1] == 2 else list(range(probs.shape[1]))
    for k in classes:
        fpr, tpr = roc_curve(y_true == k, probs[:, k])
        area = auc(fpr, tpr)
        name = labels[k] if probs.shape[1] > 2 else f"{labels[1]} vs {labels[0]}"
        ax.plot(fpr, tpr, label=f"{name} (AUC {area:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (test)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
