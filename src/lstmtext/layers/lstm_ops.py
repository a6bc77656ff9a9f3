"""The LSTM sequence math shared by :class:`~lstmtext.layers.LSTM` and its tests.

Three pieces, each matching Keras 3 (``keras/src/backend/torch/rnn.py`` and ``layers/rnn/lstm.py``):

* :func:`keras_to_torch_lstm_weights` / :func:`torch_to_keras_lstm_weights`: the one mapping between
  Keras's LSTM weights and PyTorch's fused layout (``torch.nn.LSTM``, oneDNN, cuDNN);
* :func:`lstm_cell_loop`: the reference sequence loop, with Keras's masking rules (it lives in
  :mod:`lstmtext.kernels.reference`, the one loop every fused path is tested against); it and
  :func:`lstm_fused` take one :class:`~lstmtext.kernels.args.LSTMCall`;
* :func:`draw_dropout_masks`: Keras's variational dropout masks (one per call, fixed over time).

Keras's masking rules, checked against Keras 3.15: at a masked step the state ``(h, c)`` is carried
unchanged and the output is the previous step's output (zeros before the first real step, whatever the
initial state), or zeros with ``zero_output_for_mask``. The last output is the output of the last step,
so it follows the same rule.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import ModuleType

import torch

from lstmtext.kernels.args import LSTMCall
from lstmtext.kernels.reference import Activation, lstm_cell_loop, project_inputs

__all__ = ["Activation", "LSTMCall", "draw_dropout_masks", "fused_kernels", "keras_to_torch_lstm_weights",
           "lstm_cell_loop", "lstm_fused", "project_inputs", "torch_to_keras_lstm_weights"]


def keras_to_torch_lstm_weights(
    kernel: torch.Tensor, recurrent_kernel: torch.Tensor, bias: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Map Keras LSTM weights to PyTorch's fused layout (``torch.nn.LSTM``'s ``*_l0`` parameters).

    Keras and PyTorch share the gate order (i, f, c, o), so the mapping is a transpose; Keras has one
    bias where PyTorch has two that are summed, so all of it goes to ``bias_ih`` and ``bias_hh`` is zero.
    The results keep the autograd graph (gradients flow back to the Keras weights).

    Args:
        kernel: ``(input_dim, 4 * units)``.
        recurrent_kernel: ``(units, 4 * units)``.
        bias: ``(4 * units,)``, or None for ``use_bias=False`` (both torch biases are then zero).

    Returns:
        ``{"weight_ih_l0": (4u, input_dim), "weight_hh_l0": (4u, u), "bias_ih_l0": (4u,),
        "bias_hh_l0": (4u,)}``.

    >>> w = keras_to_torch_lstm_weights(torch.zeros(15, 40), torch.zeros(10, 40), torch.zeros(40))
    >>> w["weight_ih_l0"].shape
    torch.Size([40, 15])
    """
    four_u = recurrent_kernel.shape[1]
    zeros = torch.zeros(four_u, dtype=kernel.dtype, device=kernel.device)
    return {
        "weight_ih_l0": kernel.t().contiguous(),
        "weight_hh_l0": recurrent_kernel.t().contiguous(),
        "bias_ih_l0": bias.contiguous() if bias is not None else zeros,
        "bias_hh_l0": zeros.clone(),
    }


def torch_to_keras_lstm_weights(
    weight_ih: torch.Tensor, weight_hh: torch.Tensor, bias_ih: torch.Tensor | None, bias_hh: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inverse of :func:`keras_to_torch_lstm_weights`: ``(kernel, recurrent_kernel, bias)``.

    The two PyTorch biases are summed into Keras's one (they only ever appear as a sum).
    """
    four_u = weight_hh.shape[0]
    bias = torch.zeros(four_u, dtype=weight_ih.dtype, device=weight_ih.device)
    if bias_ih is not None:
        bias = bias + bias_ih
    if bias_hh is not None:
        bias = bias + bias_hh
    return weight_ih.t().contiguous(), weight_hh.t().contiguous(), bias


def draw_dropout_masks(
    shape: tuple[int, ...], rate: float, count: int, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Keras's ``backend.random.dropout(ones, rate)`` masks: keep with ``1 - rate``, kept entries ``1/(1-rate)``.

    Returns:
        ``(count, *shape)``, of ``like``'s dtype and device.
    """
    keep = torch.empty((count, *shape), dtype=like.dtype, device=like.device)
    keep.bernoulli_(1.0 - rate, generator=generator)
    return keep.div_(1.0 - rate)


_KERNELS: ModuleType | None = None
_KERNELS_ERROR: str | None = None


def fused_kernels() -> tuple[ModuleType | None, str | None]:
    """``(lstmtext.kernels, None)`` when the fused implementation can be imported, else ``(None, why)``."""
    global _KERNELS, _KERNELS_ERROR
    if _KERNELS is None and _KERNELS_ERROR is None:
        try:
            mod = importlib.import_module("lstmtext.kernels")
            if not hasattr(mod, "lstm_sequence_fused") or not hasattr(mod, "fused_available"):
                raise ImportError("lstmtext.kernels has no lstm_sequence_fused/fused_available")
            _KERNELS = mod
        except ImportError as e:
            _KERNELS_ERROR = f"the fused kernels cannot be imported ({e})"
    return _KERNELS, _KERNELS_ERROR


def lstm_fused(
    kernels: ModuleType, call: LSTMCall, *, input_masks: torch.Tensor | None = None, return_sequences: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """:func:`lstm_cell_loop`'s result from ``kernels.lstm_sequence_fused`` (tanh/sigmoid LSTMs only), and
    the path that ran; ``NotImplementedError`` when no fused path serves the call.

    Input dropout is applied here: one shared mask multiplies ``x``; four per-gate masks (Keras's
    implementation 1) become one wider input ``[x*m_i, x*m_f, x*m_c, x*m_o]`` against the block-diagonal
    kernel, which gives each gate's projection its own mask in one matmul. ``call.recurrent_dropout_mask``
    ``(4, B, u)`` is passed through (only to a kernel module with ``SUPPORTS_GATE_DROPOUT_MASKS``). With
    ``return_sequences=False`` the first result is the last output ``(B, u)``.
    """
    if input_masks is not None:
        x, kernel = call.x, call.kernel
        if input_masks.shape[0] == 1:
            x = x * input_masks[0].unsqueeze(1)
        else:
            x = torch.cat([x * input_masks[g].unsqueeze(1) for g in range(4)], dim=-1)  # (B, T, 4F)
            kernel = torch.block_diag(*kernel.chunk(4, dim=1))  # (4F, 4u)
        call = replace(call, x=x, kernel=kernel)
    return kernels.lstm_sequence_fused(call, return_sequences=return_sequences)
