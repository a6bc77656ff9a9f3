"""Confusion matrix, ROC and AUC against hand-computed values; TensorBoard logging through SummaryWriter."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from lstmtext.errors import ConfigError, DataError
from lstmtext.report import auc, confusion_matrix, predictions_section, roc_curve
from lstmtext.report.metrics import class_ids, class_probabilities


def test_confusion_matrix():
    m = confusion_matrix(np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 1, 0, 2]), 3)
    assert m.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]


def test_roc_and_auc_by_hand():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    fpr, tpr = roc_curve(y, s)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert auc(fpr, tpr) == pytest.approx(0.75)  # 3 of the 4 (pos, neg) pairs are ordered right
    # tied scores: one diagonal step, counted as half
    fpr, tpr = roc_curve(np.array([1, 0]), np.array([0.5, 0.5]))
    assert auc(fpr, tpr) == pytest.approx(0.5)
    assert np.isnan(auc(*roc_curve(np.array([1, 1]), np.array([0.2, 0.3]))))


def test_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.3 * y, 2)  # rounding makes ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auc(*roc_curve(y, s)) == pytest.approx(pairs)


def test_probabilities_and_targets():
    assert class_probabilities(np.array([[0.25]])).tolist() == [[0.75, 0.25]]
    assert class_probabilities(np.array([0.0]), from_logits=True).tolist() == [[0.5, 0.5]]
    np.testing.assert_allclose(class_probabilities(np.log([[1.0, 3.0]]), from_logits=True), [[0.25, 0.75]])
    assert class_ids(np.array([[0, 1], [1, 0]]), 2).tolist() == [1, 0]
    with pytest.raises(DataError, match=r"lie in \[0, 2\), got ids from 0 to 3"):
        class_ids(np.array([0, 3]), 2)
    with pytest.raises(DataError, match="fractional"):
        class_ids(np.array([0.5]), 2)


def test_predictions_section_multiclass():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.1, 0.4], [0.2, 0.2, 0.6]])
    sec = predictions_section(probs, np.array([0, 1, 2, 2]), labels=["a", "b", "c"], texts=["w", "x", "y", "z"])
    assert sec["metrics"]["accuracy"] == 0.75 and "macro_auc" in sec["metrics"]
    assert sec["misclassified"] == [{"index": 2, "true": 2, "predicted": 0, "probability": 0.5, "text": "y"}]
    with pytest.raises(DataError, match="2 names"):
        predictions_section(probs, np.array([0, 1, 2, 2]), labels=["a", "b"])


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    import torch

    from lstmtext.layers import LSTM, Dense, Embedding
    from lstmtext.models import Sequential
    from lstmtext.report import TensorBoard

    torch.manual_seed(0)
    x = np.random.default_rng(0).integers(1, 20, (40, 6))
    y = (x[:, -1] > 10).astype(np.float32)
    model = Sequential([Embedding(20, 4), LSTM(3), Dense(1, "sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0,
              callbacks=[TensorBoard(tmp_path / "tb", update_freq=2)])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = EventAccumulator(str(tmp_path / "tb" / "train")).Reload()
    val = EventAccumulator(str(tmp_path / "tb" / "validation")).Reload()
    assert {"epoch_loss", "epoch_accuracy", "batch_loss"} <= set(train.Tags()["scalars"])
    assert [e.step for e in val.Scalars("epoch_loss")] == [0, 1]
    assert val.Scalars("epoch_loss")[-1].value == pytest.approx(model.history.history["val_loss"][-1], rel=1e-6)


def test_tensorboard_missing_package_is_a_clear_error(tmp_path, monkeypatch):
    from lstmtext.report import TensorBoard

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    with pytest.raises(ConfigError, match=r"needs the tensorboard package: pip install 'lstmtext\[tensorboard\]'"):
        TensorBoard(tmp_path / "tb")
