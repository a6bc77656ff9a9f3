"""Fused LSTM sequence kernels: a compiled CPU recurrence, cuDNN/oneDNN via torch, and the reference loop.

``lstm_sequence`` is what ``lstmtext.layers.LSTM`` calls; it picks the fastest exact path (see
``dispatch.py``). ``lstm_sequence_reference`` is the plain time loop every path is tested against.
"""

from lstmtext.kernels.dispatch import fused_available, lstm_sequence
from lstmtext.kernels.packed import keras_to_torch_lstm_weights, lstm_sequence_packed
from lstmtext.kernels.reference import lstm_sequence_reference

__all__ = [
    "fused_available",
    "keras_to_torch_lstm_weights",
    "lstm_sequence",
    "lstm_sequence_packed",
    "lstm_sequence_reference",
]
