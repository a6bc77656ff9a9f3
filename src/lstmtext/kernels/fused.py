"""Autograd wrapper of the compiled CPU LSTM kernel (``lstm_cpu.cpp``).

Only the time recurrence runs in C++. Everything that is not sequential in time is one big GEMM done by
torch: the input projection ``x @ kernel + bias`` for all steps (so autograd gives ``dx = dZ @ kernel^T``,
``dkernel = X^T dZ`` and ``dbias = sum dZ`` as big GEMMs too) and ``drecurrent = H_{t-1}^T dZ`` over all
steps at once in the backward.
"""

from __future__ import annotations

import torch

from lstmtext.kernels.build import load_ops

# Which C++ strategy runs the recurrence: 0 picks by shape (AVX-512 per-row loop for u <= 48 when the CPU
# has it, else the plain per-row loop; one GEMM per step above), 1 plain rows, 2 per-step GEMM, 3 AVX-512.
# Tests set it to check every strategy against the reference.
IMPL_AUTO, IMPL_ROWS, IMPL_GEMM, IMPL_VECTOR = 0, 1, 2, 3
forced_impl = IMPL_AUTO


def _recurrent_grad(hprev: torch.Tensor, dz: torch.Tensor, rdmask: torch.Tensor | None) -> torch.Tensor:
    """``sum_t (h_{t-1} * mask)^T dz_t`` as one GEMM over all (batch, step) rows. Shape (u, 4u)."""
    units = hprev.shape[-1]
    h2 = hprev.reshape(-1, units)
    dz2 = dz.reshape(-1, 4 * units)
    if rdmask is None:
        return h2.t() @ dz2
    if rdmask.dim() == 2:  # (B, u) shared by the gates
        return (hprev * rdmask.unsqueeze(1)).reshape(-1, units).t() @ dz2
    # (B, 4, u): gate k's block of columns sees h * mask_k
    hm = hprev.unsqueeze(2) * rdmask.unsqueeze(1)  # (B, T, 4, u)
    hm = hm.reshape(-1, 4, units).permute(1, 2, 0)  # (4, u, B*T)
    dzk = dz2.reshape(-1, 4, units).transpose(0, 1)  # (4, B*T, u)
    return torch.bmm(hm, dzk).permute(1, 0, 2).reshape(units, 4 * units)


class _Recurrence(torch.autograd.Function):
    """(xz, recurrent_kernel, h0, c0) -> (outputs, h_T, c_T); mask and dropout mask are constants."""

    @staticmethod
    def forward(ctx, xz, recurrent_kernel, h0, c0, mask, rdmask, zero_output):
        ops = load_ops()
        save = any(ctx.needs_input_grad[:4])
        out, h_t, c_t, gates, cseq, hprev = ops.lstm_forward(
            xz, recurrent_kernel, h0, c0, mask, rdmask, zero_output, save, forced_impl
        )
        ctx.impl = forced_impl
        ctx.zero_output = zero_output
        ctx.has_mask = mask is not None
        ctx.has_rdmask = rdmask is not None
        saved = [recurrent_kernel, gates, cseq, hprev, c0]
        if mask is not None:
            saved.append(mask)
        if rdmask is not None:
            saved.append(rdmask)
        ctx.save_for_backward(*saved)
        return out, h_t, c_t

    @staticmethod
    def backward(ctx, dout, dh_t, dc_t):
        recurrent_kernel, gates, cseq, hprev, c0, *rest = ctx.saved_tensors
        mask = rest.pop(0) if ctx.has_mask else None
        rdmask = rest.pop(0) if ctx.has_rdmask else None
        ops = load_ops()
        dz, dh0, dc0 = ops.lstm_backward(
            dout.contiguous(), dh_t.contiguous(), dc_t.contiguous(), recurrent_kernel, gates, cseq,
            c0, mask, rdmask, ctx.zero_output, ctx.impl,
        )
        d_recurrent = _recurrent_grad(hprev, dz, rdmask) if ctx.needs_input_grad[1] else None
        return dz, d_recurrent, dh0, dc0, None, None, None


def lstm_sequence_compiled(
    x: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    h0: torch.Tensor,
    c0: torch.Tensor,
    mask: torch.Tensor | None,
    rdmask: torch.Tensor | None,
    zero_output_for_mask: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compiled CPU float32 path of ``lstm_sequence``; ``rdmask`` is None, (B, u) or (B, 4, u).

    The caller has checked that the kernel is loaded and every tensor is a CPU float32 tensor.
    """
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    x2 = x.reshape(batch * steps, features)
    xz = torch.addmm(bias, x2, kernel) if bias is not None else x2 @ kernel
    xz = xz.view(batch, steps, 4 * units)
    return _Recurrence.apply(
        xz, recurrent_kernel.contiguous(), h0.contiguous(), c0.contiguous(), mask, rdmask,
        bool(zero_output_for_mask),
    )
