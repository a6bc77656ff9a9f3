"""Keras-style layers on PyTorch (``from lstmtext.layers import Embedding, LSTM, Dense``)."""

from lstmtext.layers.base import Layer, deserialize, register_layer, registered_layers, serialize
from lstmtext.layers.dense import Dense
from lstmtext.layers.dropout import Dropout
from lstmtext.layers.embedding import Embedding
from lstmtext.layers.flatten import Flatten
from lstmtext.layers.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D

__all__ = [
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Layer",
    "deserialize",
    "register_layer",
    "registered_layers",
    "serialize",
]
