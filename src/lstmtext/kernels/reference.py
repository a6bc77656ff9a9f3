"""The pure-PyTorch LSTM sequence loop: the reference every fused path is tested against, and the fallback.

It follows Keras's ``LSTMCell`` step and the masking rules of Keras's backend ``rnn`` loop
(``keras/src/backend/torch/rnn.py``) exactly, one time step per iteration, so it runs on any device and
dtype and autograd differentiates it.
"""

from __future__ import annotations

import torch


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


def recurrent_product(
    h: torch.Tensor, recurrent_kernel: torch.Tensor, gate_masks: torch.Tensor | None, shared: bool
) -> torch.Tensor:
    """``(h * mask) @ recurrent_kernel`` with one mask shared by the gates, or one per gate. Shape (B, 4u)."""
    if gate_masks is None:
        return h @ recurrent_kernel
    if shared:
        return (h * gate_masks[:, 0]) @ recurrent_kernel
    units = h.shape[-1]
    blocks = recurrent_kernel.reshape(units, 4, units).transpose(0, 1)  # (4, u, u)
    hm = (h.unsqueeze(1) * gate_masks).transpose(0, 1)  # (4, B, u)
    return torch.bmm(hm, blocks).transpose(0, 1).reshape(h.shape[0], 4 * units)


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
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    xz = x @ kernel  # (B, T, 4u): the input projection of every step in one product
    if bias is not None:
        xz = xz + bias
    shared = recurrent_dropout_mask is not None and recurrent_dropout_mask.dim() == 2
    gate_masks = gate_recurrent_masks(recurrent_dropout_mask, units)
    h, c = h0, c0
    prev_output = torch.zeros_like(h0)  # Keras starts the "previous output" at zeros, not at h0
    outputs = []
    for t in range(steps):
        z = xz[:, t] + recurrent_product(h, recurrent_kernel, gate_masks, shared)
        zi, zf, zc, zo = z.chunk(4, dim=1)
        c_new = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zc)
        h_new = torch.sigmoid(zo) * torch.tanh(c_new)
        if mask is None:
            h, c, out = h_new, c_new, h_new
        else:
            m = mask[:, t].unsqueeze(1)
            out = torch.where(m, h_new, torch.zeros_like(h_new) if zero_output_for_mask else prev_output)
            h = torch.where(m, h_new, h)
            c = torch.where(m, c_new, c)
            prev_output = out
        outputs.append(out)
    if steps == 0:
        return x.new_zeros(batch, 0, units), h, c
    return torch.stack(outputs, dim=1), h, c
