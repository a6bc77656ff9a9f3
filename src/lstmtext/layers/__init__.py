"""Keras-style layers on PyTorch (``from lstmtext.layers import Embedding, LSTM, Dense``)."""

from lstmtext.layers.activation import Activation
from lstmtext.layers.attention import AdditiveAttention, Attention
from lstmtext.layers.base import Layer, deserialize, register_layer, registered_layers, serialize
from lstmtext.layers.batch_normalization import BatchNormalization
from lstmtext.layers.bidirectional import Bidirectional
from lstmtext.layers.concat_pooling import ConcatPooling
from lstmtext.layers.dense import Dense
from lstmtext.layers.dropout import Dropout
from lstmtext.layers.embedding import Embedding
from lstmtext.layers.flatten import Flatten
from lstmtext.layers.input_layer import Input, InputLayer
from lstmtext.layers.lstm import LSTM, LSTMCell
from lstmtext.layers.lstm_ops import keras_to_torch_lstm_weights, torch_to_keras_lstm_weights
from lstmtext.layers.masking import Masking
from lstmtext.layers.merging import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from lstmtext.layers.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from lstmtext.layers.repeat_vector import RepeatVector
from lstmtext.layers.reverse_sequence import ReverseSequence
from lstmtext.layers.spatial_dropout import SpatialDropout1D
from lstmtext.layers.symbolic import InputSpec, KerasTensor
from lstmtext.layers.text_vectorization import TextVectorization
from lstmtext.layers.time_distributed import TimeDistributed

__all__ = [
    "LSTM",
    "Activation",
    "Add",
    "AdditiveAttention",
    "Attention",
    "Average",
    "Bidirectional",
    "BatchNormalization",
    "ConcatPooling",
    "Concatenate",
    "Dense",
    "Dot",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Input",
    "InputLayer",
    "InputSpec",
    "KerasTensor",
    "LSTMCell",
    "Layer",
    "Masking",
    "Maximum",
    "Minimum",
    "Multiply",
    "RepeatVector",
    "ReverseSequence",
    "SpatialDropout1D",
    "Subtract",
    "TextVectorization",
    "TimeDistributed",
    "add",
    "average",
    "concatenate",
    "deserialize",
    "dot",
    "keras_to_torch_lstm_weights",
    "maximum",
    "minimum",
    "multiply",
    "register_layer",
    "registered_layers",
    "serialize",
    "subtract",
    "torch_to_keras_lstm_weights",
]

