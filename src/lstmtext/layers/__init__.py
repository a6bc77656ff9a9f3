"""Keras-style layers on PyTorch (``from lstmtext.layers import Embedding, LSTM, Dense``)."""

from lstmtext.layers.base import Layer, deserialize, register_layer, registered_layers, serialize
from lstmtext.layers.bidirectional import Bidirectional
from lstmtext.layers.dense import Dense
from lstmtext.layers.dropout import Dropout
from lstmtext.layers.embedding import Embedding
from lstmtext.layers.flatten import Flatten
from lstmtext.layers.lstm import LSTM, LSTMCell
from lstmtext.layers.lstm_ops import keras_to_torch_lstm_weights, torch_to_keras_lstm_weights
from lstmtext.layers.masking import Masking
from lstmtext.layers.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from lstmtext.layers.text_vectorization import TextVectorization

__all__ = [
    "LSTM",
    "Bidirectional",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "LSTMCell",
    "Layer",
    "Masking",
    "TextVectorization",
    "deserialize",
    "keras_to_torch_lstm_weights",
    "register_layer",
    "registered_layers",
    "serialize",
    "torch_to_keras_lstm_weights",
]


def __getattr__(name: str):
    # keras.layers.Input / InputLayer live with the model code (they describe a model's input); lazy to avoid
    # an import cycle (models imports layers).
    if name in ("Input", "InputLayer"):
        from lstmtext.models import sequential

        return getattr(sequential, name)
    raise AttributeError(f"module 'lstmtext.layers' has no attribute {name!r}")
