"""Keras-style layers on PyTorch (``from lstmtext.layers import Embedding, LSTM, Dense``)."""

from lstmtext.layers.base import Layer, deserialize, register_layer, registered_layers, serialize
from lstmtext.layers.dense import Dense
from lstmtext.layers.dropout import Dropout
from lstmtext.layers.embedding import Embedding

__all__ = [
    "Dense",
    "Dropout",
    "Embedding",
    "Layer",
    "deserialize",
    "register_layer",
    "registered_layers",
    "serialize",
]
