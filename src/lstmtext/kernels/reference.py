"""The pure-PyTorch LSTM sequence loop: the reference every fused path is tested against, and the fallback.

One loop, :func:`lstm_cell_loop`: the layer's cell loop (any activations, Keras's input dropout masks,
``return_sequences``), and, through :func:`lstm_sequence_reference`, the fallback of
:func:`~lstmtext.kernels.lstm_sequence` with the kernels' argument conventions. It follows Keras's
``LSTMCell`` step and the masking rules of Keras's backend ``rnn`` loop (``keras/src/backend/torch/rnn.py``)
exactly, one time step per iteration, so it runs on any device and dtype and autograd differentiates it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

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
    x: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    h0: torch.Tensor,
    c0: torch.Tensor,
    *,
    activation: Activation = torch.tanh,
    recurrent_activation: Activation = torch.sigmoid,
    mask: torch.Tensor | None = None,
    input_masks: torch.Tensor | None = None,
    recurrent_masks: torch.Tensor | None = None,
    zero_output_for_mask: bool = False,
    return_sequences: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run an LSTM over a batch-major sequence, step by step, exactly as Keras's cell and RNN loop.

    The input projection of all steps is one matmul; each step adds ``h @ recurrent_kernel`` and applies
    the gates (each activation on its own ``(B, u)`` gate block, as Keras does).

    Args:
        x: ``(B, T, F)`` inputs, already in processing order (flip for ``go_backwards`` before).
        kernel, recurrent_kernel, bias: Keras weights ``(F, 4u)``, ``(u, 4u)``, ``(4u,)`` or None.
        h0, c0: ``(B, u)`` initial states.
        activation, recurrent_activation: the cell and gate activations.
        mask: ``(B, T)`` bool, True for a real step, or None.
        input_masks: input dropout masks, see :func:`project_inputs`.
        recurrent_masks: ``(4, B, u)`` recurrent dropout masks, one per gate, applied to ``h_{t-1}``
            (Keras 3 always uses one per gate with recurrent dropout), or None.
        zero_output_for_mask: masked steps output zeros instead of the previous output.
        return_sequences: keep every step's output; otherwise only the last is returned.

    Returns:
        ``(outputs, h_T, c_T)``: outputs ``(B, T, u)`` (``(B, 1, u)``, the last step, when not
        ``return_sequences``), and the final carried states ``(B, u)``.
    """
    steps = x.shape[1]
    u = recurrent_kernel.shape[0]
    # (T, B, 4u) split once into steps: indexing zx[t] instead would make backward build T full-size zero tensors.
    zx = project_inputs(x, kernel, bias, input_masks).transpose(0, 1).unbind(0)
    r4 = None
    if recurrent_masks is not None:
        r4 = recurrent_kernel.reshape(u, 4, u).permute(1, 0, 2)  # (4, u, u): one block per gate
    m = mask.transpose(0, 1).unsqueeze(-1).unbind(0) if mask is not None else None  # T x (B, 1)
    h, c = h0, c0
    fill = torch.zeros_like(h0)  # what a masked step outputs: zeros, or the previous output
    outputs: list[torch.Tensor] = []
    out = h0
    for t in range(steps):
        if r4 is None:
            z = torch.addmm(zx[t], h, recurrent_kernel)
        else:
            rec = torch.bmm(h.unsqueeze(0) * recurrent_masks, r4)  # (4, B, u)
            z = zx[t] + rec.permute(1, 0, 2).reshape(h.shape[0], 4 * u)
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
            if not zero_output_for_mask:
                fill = out
        if return_sequences:
            outputs.append(out)
    if return_sequences:
        seq = torch.stack(outputs, dim=1) if outputs else x.new_zeros(x.shape[0], 0, u)
    else:
        seq = out.unsqueeze(1)
    return seq, h, c



def gate_recurrent_masks(recurrent_dropout_mask: torch.Tensor | None, units: int) -> torch.Tensor | None:
    """Returns the recurrent dropout mask as ``(B, 4, u)`` (one mask per gate i, f, c, o), or ``None``.

    A ``(B, u)`` mask is shared by the four gates; a ``(4, B, u)`` mask has one mask per gate, which is
    what Keras's ``LSTMCell`` draws when ``recurrent_dropout > 0`` (``implementation=1``).
    """
    if recurrent_dropout_mask is None:
        return None
    m = recurrent_dropout_mask
    if m.dim() == 2:
        return m.unsqueeze(1).expand(m.shape[0], 4, units)
    return m.transpose(0, 1)


def lstm_sequence_reference(
    x: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    h0: torch.Tensor,
    c0: torch.Tensor,
    mask: torch.Tensor | None = None,
    recurrent_dropout_mask: torch.Tensor | None = None,
    zero_output_for_mask: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs a Keras LSTM over a batch-major sequence with a plain time loop (see ``lstm_sequence``).

    Args:
        x: ``(B, T, F)`` inputs.
        kernel: ``(F, 4u)`` input weights, gates in Keras order i, f, c, o.
        recurrent_kernel: ``(u, 4u)`` recurrent weights.
        bias: ``(4u,)`` or ``None``.
        h0, c0: ``(B, u)`` initial states.
        mask: ``(B, T)`` bool, True where the step is real, or ``None``.
        recurrent_dropout_mask: multiplier of ``h_{t-1}`` before the recurrent product: ``(B, u)`` shared
            by the gates or ``(4, B, u)`` one per gate; ``None`` for no recurrent dropout.
        zero_output_for_mask: masked steps output zeros instead of the previous output.

    Returns:
        ``(outputs (B, T, u), h_T (B, u), c_T (B, u))``.

    >>> B, T, F, u = 2, 5, 3, 4
    >>> out, h, c = lstm_sequence_reference(torch.randn(B, T, F), torch.randn(F, 4 * u),
    ...                                     torch.randn(u, 4 * u), None, torch.zeros(B, u), torch.zeros(B, u))
    >>> tuple(out.shape), tuple(h.shape)
    ((2, 5, 4), (2, 4))
    """
    gate_masks = gate_recurrent_masks(recurrent_dropout_mask, recurrent_kernel.shape[0])
    return lstm_cell_loop(x, kernel, recurrent_kernel, bias, h0, c0, mask=mask,
                          recurrent_masks=None if gate_masks is None else gate_masks.transpose(0, 1),
                          zero_output_for_mask=zero_output_for_mask)
