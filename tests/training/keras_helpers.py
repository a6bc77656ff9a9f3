"""Shared helpers for tests that compare lstmtext against real Keras (torch backend)."""

from __future__ import annotations

import os

import numpy as np
import pytest


def import_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("these comparisons need KERAS_BACKEND=torch")
    return keras


def copy_weights(keras_model, model) -> None:
    """Give our model Keras's initial weights (same shapes and order)."""
    model.set_weights(keras_model.get_weights())


def assert_weights_close(keras_model, model, atol: float = 1e-5) -> None:
    ours, theirs = model.get_weights(), keras_model.get_weights()
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, np.asarray(b), atol=atol, rtol=0, err_msg=f"weight {i}")
