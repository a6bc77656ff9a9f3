"""Fused LSTM sequence kernels: a compiled CPU recurrence, cuDNN/oneDNN via torch, and the reference loop.

``lstm_sequence`` is what ``lstmtext.layers.LSTM`` calls; it picks the fastest exact path (see
``dispatch.py``). ``lstm_sequence_reference`` is the plain time loop every path is tested against.
"""

from lstmtext.kernels.dispatch import fused_available, lstm_sequence
from lstmtext.kernels.embedding_lstm import lstm_sequence_from_embedding
from lstmtext.kernels.packed import keras_to_torch_lstm_weights, lstm_sequence_packed
from lstmtext.kernels.reference import lstm_sequence_reference

#: ``lstm_sequence`` takes Keras's four per-gate recurrent dropout masks as one ``(4, B, u)`` tensor.
SUPPORTS_GATE_DROPOUT_MASKS = True

__all__ = [
    "SUPPORTS_GATE_DROPOUT_MASKS",
    "fused_available",
    "keras_to_torch_lstm_weights",
    "lstm_sequence",
    "lstm_sequence_from_embedding",
    "lstm_sequence_packed",
    "lstm_sequence_reference",
]
