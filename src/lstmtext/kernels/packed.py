"""The LSTM sequence through torch's own fused LSTM (``torch._VF.lstm``: cuDNN on CUDA, oneDNN on CPU).

Keras weights map to torch's layout with ``keras_to_torch_lstm_weights``. Torch's LSTM has no mask, so
masks whose real steps are one contiguous block per row (right-padded, left-padded, or both) are handled
by an exact transformation: each row is shifted so that its real steps start at step 0, the shifted batch
runs as a packed sequence (lengths = real steps per row), and the outputs are shifted back. The steps
before a row's first real step output zeros and carry (h0, c0) unchanged; the steps after its last real
step repeat the last real output (or output zeros with ``zero_output_for_mask``) and carry the last states;
a row with no real step outputs zeros and returns (h0, c0). That is what Keras's masked loop computes.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmtext.kernels.args import LSTMCall


def keras_to_torch_lstm_weights(
    kernel: torch.Tensor, recurrent_kernel: torch.Tensor, bias: torch.Tensor | None
) -> list[torch.Tensor]:
    """Maps Keras LSTM weights to torch's ``[weight_ih, weight_hh, bias_ih, bias_hh]``.

    Both use gate order i, f, c(g), o. ``weight_ih = kernel.T`` (4u, F), ``weight_hh = recurrent_kernel.T``
    (4u, u), ``bias_ih = bias`` and ``bias_hh = 0`` (Keras has one bias). Differentiable (no copies kept).

    >>> w = keras_to_torch_lstm_weights(torch.zeros(3, 8), torch.zeros(2, 8), torch.ones(8))
    >>> [tuple(t.shape) for t in w]
    [(8, 3), (8, 2), (8,), (8,)]
    """
    four_u = recurrent_kernel.shape[1]
    b_ih = bias if bias is not None else kernel.new_zeros(four_u)
    return [kernel.t(), recurrent_kernel.t(), b_ih, kernel.new_zeros(four_u)]


def contiguous_block_bounds(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(start, length)`` per row if every row's real steps form one contiguous block, else ``None``.

    A row with no real step has length 0 (and start 0).
    """
    steps = mask.shape[1]
    m = mask.to(torch.int32)
    length = m.sum(dim=1)
    start = torch.where(length > 0, m.argmax(dim=1), torch.zeros_like(length))
    idx = torch.arange(steps, device=mask.device)
    block = (idx >= start.unsqueeze(1)) & (idx < (start + length).unsqueeze(1))
    if not torch.equal(block, mask.to(torch.bool)):
        return None
    return start, length


def _vf_lstm(x, h0, c0, params, lengths=None):
    """torch's fused LSTM, batch-first; ``lengths`` (CPU int64) runs a packed sequence."""
    hx = (h0.unsqueeze(0), c0.unsqueeze(0))
    if lengths is None:
        out, h, c = torch._VF.lstm(x, hx, params, True, 1, 0.0, torch.is_grad_enabled(), False, True)
        return out, h[0], c[0]
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    # The packed overload takes (data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidir)
    # and returns states in the packed (sorted) order; unsort them with the pack's indices.
    hx_sorted = tuple(s.index_select(1, packed.sorted_indices) for s in hx)
    out, h, c = torch._VF.lstm(
        packed.data, packed.batch_sizes, hx_sorted, params, True, 1, 0.0, torch.is_grad_enabled(), False
    )
    out_packed = torch.nn.utils.rnn.PackedSequence(out, packed.batch_sizes, packed.sorted_indices,
                                                   packed.unsorted_indices)
    padded, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=x.shape[1])
    h = h[0].index_select(0, packed.unsorted_indices)
    c = c[0].index_select(0, packed.unsorted_indices)
    return padded, h, c


def lstm_sequence_packed(
    call: LSTMCall, bounds: tuple[torch.Tensor, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``lstm_sequence`` through ``torch._VF.lstm`` for no mask or a contiguous-block mask (no dropout).

    Args:
        call: as :func:`~lstmtext.kernels.lstm_sequence`, without recurrent dropout (token ``ids`` are
            looked up first).
        bounds: ``contiguous_block_bounds(call.mask)`` if already computed.

    Raises:
        ValueError: the call has recurrent dropout, or a mask whose real steps are not one contiguous block
            per row.
    """
    if call.recurrent_dropout_mask is not None:
        raise ValueError("lstm_sequence_packed: torch's fused LSTM has no recurrent dropout")
    call = call.embedded()
    x, h0, c0, mask = call.x, call.h0, call.c0, call.mask
    params = keras_to_torch_lstm_weights(call.kernel, call.recurrent_kernel, call.bias)
    if mask is None:
        return _vf_lstm(x, h0, c0, params)
    if bounds is None:
        bounds = contiguous_block_bounds(mask)
        if bounds is None:
            raise ValueError("lstm_sequence_packed needs each row's real steps to be one contiguous block")
    start, length = bounds
    batch, steps, _ = x.shape
    units = call.units
    idx = torch.arange(steps, device=x.device)
    # Shift each row left by its start: shifted[b, s] = x[b, start_b + s]
    src = (idx.unsqueeze(0) + start.unsqueeze(1)).clamp(max=steps - 1)  # (B, T)
    shifted = x.gather(1, src.unsqueeze(2).expand(batch, steps, x.shape[2]))
    nonempty = length > 0
    # Rows without any real step run one dummy step and are then replaced by (zeros, h0, c0).
    run_len = torch.where(nonempty, length, torch.ones_like(length)).cpu().to(torch.int64)
    out_s, h, c = _vf_lstm(shifted, h0, c0, params, run_len)
    # Back to the original positions: out[b, t] = out_s[b, t - start_b] inside the block.
    rel = idx.unsqueeze(0) - start.unsqueeze(1)  # (B, T)
    inside = (rel >= 0) & (rel < length.unsqueeze(1))
    after = rel >= length.unsqueeze(1)
    last = (length - 1).clamp(min=0)
    gather_idx = torch.where(inside, rel, last.unsqueeze(1).expand(batch, steps)).clamp(min=0)
    out = out_s.gather(1, gather_idx.unsqueeze(2).expand(batch, steps, units))
    keep = inside if call.zero_output_for_mask else inside | (after & nonempty.unsqueeze(1))
    out = torch.where(keep.unsqueeze(2), out, torch.zeros((), dtype=out.dtype, device=out.device))
    h = torch.where(nonempty.unsqueeze(1), h, h0)
    c = torch.where(nonempty.unsqueeze(1), c, c0)
    return out, h, c
