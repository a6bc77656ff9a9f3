"""The pure-PyTorch LSTM sequence loop: the reference every fused path is tested against, and the fallback.

One loop, :func:`lstm_cell_loop`: the layer's cell loop (any activations, Keras's input dropout masks,
``return_sequences``), and, as :func:`lstm_sequence_reference`, the fallback of
:func:`~lstmtext.kernels.lstm_sequence`. Both take one :class:`~lstmtext.kernels.args.LSTMCall`. It follows Keras's
``LSTMCell`` step and the masking rules of Keras's backend ``rnn`` loop (``keras/src/backend/torch/rnn.py``)
exactly, one time step per iteration, so it runs on any device and dtype and autograd differentiates it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lstmtext.kernels.args import LSTMCall

Activation = Callable[[torch.Tensor], torch.Tensor]


def project_inputs(
    x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, input_masks: torch.Tensor | None
) -> torch.Tensor:
    """``x @ kernel + bias`` for every step at once, with Keras's input dropout.

    Args:
        x: ``(B, T, F)``.
        input_masks: None, ``(1, B, F)`` (one mask for all gates, Keras's implementation 2) or
            ``(4, B, F)`` (one per gate i, f, c, o: Keras's implementation 1, used with recurrent dropout).

    Returns:
        ``(B, T, 4u)``.
    """
    if input_masks is None or input_masks.shape[0] == 1:
        if input_masks is not None:
            x = x * input_masks[0].unsqueeze(1)
        z = torch.matmul(x, kernel)
    else:
        f, four_u = kernel.shape
        u = four_u // 4
        xm = x.unsqueeze(0) * input_masks.unsqueeze(2)  # (4, B, T, F)
        k4 = kernel.reshape(f, 4, u).permute(1, 0, 2).unsqueeze(1)  # (4, 1, F, u)
        z = torch.matmul(xm, k4)  # (4, B, T, u)
        z = z.permute(1, 2, 0, 3).reshape(x.shape[0], x.shape[1], four_u)
    return z + bias if bias is not None else z


def lstm_cell_loop(
    call: LSTMCall,
    *,
    activation: Activation = torch.tanh,
    recurrent_activation: Activation = torch.sigmoid,
    input_masks: torch.Tensor | None = None,
    return_sequences: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run an LSTM over a batch-major sequence, step by step, exactly as Keras's cell and RNN loop.

    The input projection of all steps is one matmul; each step adds ``h @ recurrent_kernel`` and applies
    the gates (each activation on its own ``(B, u)`` gate block, as Keras does).

    Args:
        call: inputs (already in processing order: flip for ``go_backwards`` before), Keras weights, initial
            states, mask, recurrent dropout masks and ``zero_output_for_mask`` (:class:`LSTMCall`; a call
            with ``ids`` runs on the looked-up inputs).
        activation, recurrent_activation: the cell and gate activations.
        input_masks: input dropout masks, see :func:`project_inputs`.
        return_sequences: keep every step's output; otherwise only the last is returned.

    Returns:
        ``(outputs, h_T, c_T)``: outputs ``(B, T, u)`` (``(B, 1, u)``, the last step, when not
        ``return_sequences``), and the final carried states ``(B, u)``.
    """
    call = call.embedded()
    x, recurrent_kernel, mask = call.x, call.recurrent_kernel, call.mask
    steps, u = call.steps, call.units
    # (T, B, 4u) split once into steps: indexing zx[t] instead would make backward build T full-size zero tensors.
    zx = project_inputs(x, call.kernel, call.bias, input_masks).transpose(0, 1).unbind(0)
    rd = call.recurrent_dropout_mask
    r4 = None
    if rd is not None and rd.dim() == 3:
        r4 = recurrent_kernel.reshape(u, 4, u).permute(1, 0, 2)  # (4, u, u): one block per gate
    m = mask.transpose(0, 1).unsqueeze(-1).unbind(0) if mask is not None else None  # T x (B, 1)
    h, c = call.h0, call.c0
    fill = torch.zeros_like(h)  # what a masked step outputs: zeros, or the previous output
    outputs: list[torch.Tensor] = []
    out = h
    for t in range(steps):
        if r4 is not None:  # one recurrent dropout mask per gate (Keras's LSTMCell)
            rec = torch.bmm(h.unsqueeze(0) * rd, r4)  # (4, B, u)
            z = zx[t] + rec.permute(1, 0, 2).reshape(h.shape[0], 4 * u)
        else:
            z = torch.addmm(zx[t], h if rd is None else h * rd, recurrent_kernel)
        zi, zf, zc, zo = z.chunk(4, dim=1)
        c_new = recurrent_activation(zf) * c + recurrent_activation(zi) * activation(zc)
        h_new = recurrent_activation(zo) * activation(c_new)
        if m is None:
            h, c, out = h_new, c_new, h_new
        else:
            mt = m[t]
            h = torch.where(mt, h_new, h)
            c = torch.where(mt, c_new, c)
            out = torch.where(mt, h_new, fill)
            if not call.zero_output_for_mask:
                fill = out
        if return_sequences:
            outputs.append(out)
    if return_sequences:
        seq = torch.stack(outputs, dim=1) if outputs else x.new_zeros(x.shape[0], 0, u)
    else:
        seq = out.unsqueeze(1)
    return seq, h, c


def lstm_sequence_reference(call: LSTMCall) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs a Keras LSTM over a batch-major sequence with a plain time loop (see ``lstm_sequence``).

    Args:
        call: as :func:`~lstmtext.kernels.lstm_sequence` (:class:`LSTMCall`).

    Returns:
        ``(outputs (B, T, u), h_T (B, u), c_T (B, u))``.

    >>> B, T, F, u = 2, 5, 3, 4
    >>> out, h, c = lstm_sequence_reference(LSTMCall(torch.randn(B, T, F), torch.randn(F, 4 * u),
    ...                                              torch.randn(u, 4 * u), None, torch.zeros(B, u),
    ...                                              torch.zeros(B, u)))
    >>> tuple(out.shape), tuple(h.shape)
    ((2, 5, 4), (2, 4))
    """
    return lstm_cell_loop(call)
