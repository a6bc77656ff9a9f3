"""Keras's ``clear_session``: forget global naming state so a new model's layers are named from scratch."""

from __future__ import annotations


def clear_session() -> None:
    """Restart automatic layer and model names (``lstm``, ``lstm_1`` ...), like ``keras.utils.clear_session()``."""
    from lstmtext.layers.base import clear_session as _clear_layer_names

    _clear_layer_names()
