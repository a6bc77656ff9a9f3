"""Test-split numbers of a classifier: probabilities, confusion matrix, ROC curve and AUC (NumPy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmtext.errors import DataError


def class_probabilities(outputs: Any, from_logits: bool = False) -> np.ndarray:
    """Model outputs to ``(N, C)`` class probabilities: a sigmoid column ``p`` becomes ``[1 - p, p]``.

    Args:
        outputs: ``(N,)`` or ``(N, 1)`` for a binary model, ``(N, C)`` for a softmax one.
        from_logits: the outputs are logits (a sigmoid/softmax is applied).

    Returns:
        float64 ``(N, C)``, ``C >= 2``.
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise DataError(f"model outputs must be (N,), (N, 1) or (N, classes), got shape {out.shape}")
    if out.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-out[:, 0])) if from_logits else out[:, 0]
        return np.stack([1.0 - p, p], axis=1)
    if from_logits:
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return out


def class_ids(y: Any, n_classes: int) -> np.ndarray:
    """Targets as int class ids ``(N,)``: from ids, a ``(N, 1)`` column, or one-hot/probability rows."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == n_classes and n_classes > 1:
        return arr.argmax(axis=1).astype(np.int64)
    arr = arr.reshape(-1)
    if arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise DataError("test targets must be class ids (integers) or one-hot rows, got fractional values")
    ids = arr.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n_classes):
        raise DataError(f"test targets must lie in [0, {n_classes}), got ids from {ids.min()} to {ids.max()}")
    return ids


def predicted_ids(probs: np.ndarray) -> np.ndarray:
    """Argmax class of each row; a binary tie (p = 0.5) goes to class 0, as Keras's binary accuracy."""
    return probs.argmax(axis=1).astype(np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``m[i, j]`` = number of samples of class ``i`` predicted as ``j``; int64 ``(C, C)``."""
    flat = np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (from ``(0, 0)`` to ``(1, 1)``).

    Args:
        y_true: ``(N,)`` 0/1 (1 = the positive class).
        score: ``(N,)`` the positive class's score; higher means more positive.

    Returns:
        ``(fpr, tpr)``, each ``(K,)``; tied scores form one step (a diagonal segment).
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1] if len(s) else np.array([], np.int64)
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    tpr = np.r_[0.0, tps / pos] if pos else np.r_[0.0, np.zeros_like(tps, dtype=np.float64)]
    fpr = np.r_[0.0, fps / neg] if neg else np.r_[0.0, np.zeros_like(fps, dtype=np.float64)]
    return fpr, tpr


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve (trapezoids); NaN when it is undefined (one class only)."""
    if len(fpr) < 2 or fpr[-1] == 0 or tpr[-1] == 0:
        return float("nan")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def test_summary(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float | int]:
    """Accuracy, and for a binary model AUC, precision, recall and F1 of class 1; macro AUC otherwise."""
    n = probs.shape[1]
    pred = predicted_ids(probs)
    out: dict[str, float | int] = {"accuracy": float(np.mean(pred == y_true)) if len(y_true) else float("nan"),
                             "samples": len(y_true)}
    if n == 2:
        fpr, tpr = roc_curve(y_true == 1, probs[:, 1])
        tp = float(np.sum((pred == 1) & (y_true == 1)))
        precision = tp / max(float(np.sum(pred == 1)), 1.0)
        recall = tp / max(float(np.sum(y_true == 1)), 1.0)
        out.update(auc=auc(fpr, tpr), precision=precision, recall=recall,
                   f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    else:
        aucs = [auc(*roc_curve(y_true == k, probs[:, k])) for k in range(n)]
        out["macro_auc"] = float(np.nanmean(aucs)) if not all(np.isnan(aucs)) else float("nan")
    return out
