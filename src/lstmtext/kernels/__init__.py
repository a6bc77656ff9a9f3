"""Fused LSTM sequence kernels: a compiled CPU recurrence, cuDNN/oneDNN via torch, and the reference loop.

Every entry point takes one :class:`LSTMCall` (inputs or an embedding table and token ids, the Keras
weights, initial states, mask, recurrent dropout; its shapes are checked when it is made):

>>> import torch
>>> x, k, r, h = torch.randn(2, 6, 3), torch.randn(3, 8), torch.randn(2, 8), torch.zeros(2, 2)
>>> out, h_t, c_t = lstm_sequence(LSTMCall(x, k, r, None, h, h))

``lstm_sequence_fused`` is what ``lstmtext.layers.LSTM`` calls: it picks the fastest exact path (see
``dispatch.py``) and says which ran, or raises ``NotImplementedError`` (the layer then runs its loop);
``lstm_sequence`` adds the fallback. ``lstm_sequence_reference`` is the plain time loop every path is tested
against; ``force_impl`` pins a strategy of the compiled CPU kernel (``strategies.py``).
"""

from lstmtext.kernels.args import LSTMCall
from lstmtext.kernels.dispatch import fused_available, lstm_sequence, lstm_sequence_fused
from lstmtext.kernels.packed import keras_to_torch_lstm_weights, lstm_sequence_packed
from lstmtext.kernels.reference import lstm_sequence_reference
from lstmtext.kernels.strategies import available_strategies, bfloat16_matmuls, force_impl, strategy_names

#: ``lstm_sequence`` takes Keras's four per-gate recurrent dropout masks as one ``(4, B, u)`` tensor.
SUPPORTS_GATE_DROPOUT_MASKS = True

__all__ = [
    "LSTMCall",
    "SUPPORTS_GATE_DROPOUT_MASKS",
    "available_strategies",
    "bfloat16_matmuls",
    "force_impl",
    "fused_available",
    "keras_to_torch_lstm_weights",
    "lstm_sequence",
    "lstm_sequence_fused",
    "lstm_sequence_packed",
    "lstm_sequence_reference",
    "strategy_names",
]
