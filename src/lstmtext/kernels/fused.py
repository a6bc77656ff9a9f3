"""Autograd wrapper of the compiled CPU LSTM kernel (``lstm_cpu.cpp``).

Only the time recurrence runs in C++. Everything that is not sequential in time is one big GEMM over all
(batch, step) rows: the input projection ``x @ kernel + bias`` in the forward, and ``dx = dZ @ kernel^T``,
``dkernel = X^T dZ``, ``drecurrent = H_{t-1}^T dZ`` and ``dbias = sum dZ`` in the backward.
"""

from __future__ import annotations

import torch

from lstmtext.kernels.args import LSTMCall
from lstmtext.kernels.build import load_ops
from lstmtext.kernels.strategies import bfloat16_matmuls_active, forced_impl, resolved_strategy

_onednn: list[bool] = []


def linear(a: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None, bf16: bool = False) -> torch.Tensor:
    """``a @ w.T (+ bias)`` for CPU float32, through oneDNN's matmul when torch has it, else ``torch.mm``.

    On the AMD CPUs measured, ``torch.mm`` (MKL sgemm) reaches about half of oneDNN's speed on the LSTM's
    shapes (bench/RESULTS.md). Strided (transposed) ``a`` and ``w`` are accepted as they are. With ``bf16``
    the operands are rounded to bfloat16 and multiplied by oneDNN's bfloat16 matmul (float32 accumulation;
    ``vdpbf16ps`` on AVX512_BF16 CPUs, about twice the float32 rate), the product rounded to bfloat16 and
    returned in float32 with the bias added in float32.
    """
    if not _onednn:
        _onednn.append(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))
    if bf16:
        out = torch.ops.mkldnn._linear_pointwise(a.bfloat16(), w.bfloat16(), None, "none", [None], "")
        return torch.add(out, bias) if bias is not None else out.float()  # bf16 + f32 promotes to f32
    if _onednn[0]:
        return torch.ops.mkldnn._linear_pointwise(a, w, bias, "none", [None], "")
    return torch.addmm(bias, a, w.t()) if bias is not None else a @ w.t()


def _recurrent_grad(hprev: torch.Tensor, dz: torch.Tensor, rdmask: torch.Tensor | None,
                    bf16: bool = False) -> torch.Tensor:
    """``sum_t (h_{t-1} * mask)^T dz_t`` as one GEMM over all (batch, step) rows. Shape (u, 4u).

    A (u x B*T) @ (B*T x 4u) product: tiny output, very long reduction. Here ``torch.mm`` beats oneDNN's
    matmul (``linear``), unlike on the projection shapes: 0.69-0.79 vs 1.63-1.84 ms per training step of the
    tutorial model on the AVX2 machine (bench/RESULTS.md).
    """
    units = hprev.shape[-1]
    dz2 = dz.reshape(-1, 4 * units)
    if rdmask is None or rdmask.dim() == 2:
        hm = hprev if rdmask is None else hprev * rdmask.unsqueeze(1)  # (B, T, u)
        hm2 = hm.reshape(-1, units)
        # From u = 256 on oneDNN's matmul is the faster one (1.06-1.08x at u = 512-1024, Zen 4, one thread).
        return linear(hm2.t(), dz2.t(), bf16=bf16) if units >= 256 or bf16 else torch.mm(hm2.t(), dz2)
    # (B, 4, u): gate k's block of columns sees h * mask_k
    dz2 = dz2.float()
    hm = hprev.unsqueeze(2) * rdmask.unsqueeze(1)  # (B, T, 4, u)
    hm = hm.reshape(-1, 4, units).permute(1, 2, 0)  # (4, u, B*T)
    dzk = dz2.reshape(-1, 4, units).transpose(0, 1)  # (4, B*T, u)
    return torch.bmm(hm, dzk).permute(1, 0, 2).reshape(units, 4 * units)


# Bytes of per-thread weight-gradient partials up to which the per-step GEMM strategy accumulates them inside
# the time loop (lstm_backward_fused): the partials must stay in a core's L2 (1-2 MB), else every step streams
# them through memory and the batched GEMMs after the loop are faster. Single-thread CPU time, AMD Zen 4:
# fused / batched 0.93 at (B, T, F, u) = (256, 200, 300, 128), 0.71 at (256, 200, 128, 64), 1.13 at
# (64, 70, 256, 512), 1.19 at (64, 70, 400, 1024), 1.50 at (64, 70, 1150, 1150) (bench/RESULTS.md).
FUSED_GRADS_MAX_BYTES = 1 << 20


# Bytes of the (F, 4u) float32 kernel up to which the per-step GEMM strategy projects each step's inputs
# inside its time loop (lstm_forward_x) instead of one (B*T, F) x (F, 4u) GEMM before it: every step then
# reads the whole kernel, which must stay in cache. Forward of one layer, 2 threads, alternated in one
# process (bench/bench_step_projection.py, four runs): per-step / one GEMM 0.28-0.31 at (B, T, F, u) =
# (256, 200, 128, 64), 0.83-0.88 at (256, 200, 300, 128), 0.84-0.94 at (64, 70, 256, 512) (2 MB), 0.95-1.00
# at (64, 70, 400, 1024) (6.5 MB), 1.06-1.13 at (64, 70, 1150, 1150) (21 MB). Within bfloat16_matmuls() the
# one GEMM runs at twice the rate, so only kernels up to 1 MB (where the (B, T, 4u) projection's memory
# traffic, not its arithmetic, dominates) are projected per step, in float32.
STEP_PROJECTION_MAX_BYTES = 4 << 20
STEP_PROJECTION_MAX_BYTES_BF16 = 1 << 20


def step_projection(features: int, units: int, impl: int) -> bool:
    """Whether the forward takes each step's input projection inside the time loop (per-step GEMM strategy,
    a kernel that stays in cache; float32 products)."""
    limit = STEP_PROJECTION_MAX_BYTES_BF16 if bfloat16_matmuls_active() else STEP_PROJECTION_MAX_BYTES
    return resolved_strategy(units, impl) == "gemm" and features * 4 * units * 4 <= limit


def fuse_weight_grads(features: int, units: int) -> bool:
    """Whether the backward forms the weight gradients step by step (small) or as GEMMs over all steps."""
    return (features + units) * 4 * units * 4 <= FUSED_GRADS_MAX_BYTES


def _forward(x, kernel, bias, recurrent_kernel, h0, c0, mask, rdmask, zero_output: bool, save: bool,
             impl: int) -> list[torch.Tensor]:
    """The compiled forward, (outputs, h_T, c_T, gates, cseq, hprev): the input projection taken per step
    inside the time loop (:func:`step_projection`) or as one (B*T, 4u) GEMM before it."""
    ops = load_ops()
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    bf16 = bfloat16_matmuls_active()
    # In inference the kernel's per-step products may be bfloat16 too (bfloat16_matmuls' docstring).
    if step_projection(features, units, impl):
        return ops.lstm_forward_x(x, kernel, bias, recurrent_kernel, h0, c0, mask, rdmask, zero_output, save, impl,
                                  bf16 and not save)
    xz = linear(x.reshape(batch * steps, features), kernel.t().contiguous(), bias, bf16)
    return ops.lstm_forward(xz.view(batch, steps, 4 * units), recurrent_kernel, h0, c0, mask, rdmask, zero_output,
                            save, impl, bf16 and not save)


class _FusedLSTM(torch.autograd.Function):
    """(x, kernel, recurrent_kernel, bias, h0, c0) -> (outputs, h_T, c_T); masks are constants."""

    @staticmethod
    def forward(ctx, x, kernel, recurrent_kernel, bias, h0, c0, mask, rdmask, zero_output):
        ctx.bf16 = bfloat16_matmuls_active()
        ctx.impl = forced_impl()
        out, h_t, c_t, gates, cseq, hprev = _forward(
            x, kernel, bias, recurrent_kernel, h0, c0, mask, rdmask, zero_output, any(ctx.needs_input_grad[:6]),
            ctx.impl,
        )
        x2 = x.reshape(-1, x.shape[-1])
        ctx.zero_output = zero_output
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x2, kernel, recurrent_kernel, gates, cseq, hprev, c0, mask, rdmask)
        return out, h_t, c_t

    @staticmethod
    def backward(ctx, dout, dh_t, dc_t):
        x2, kernel, recurrent_kernel, gates, cseq, hprev, c0, mask, rdmask = ctx.saved_tensors
        ops = load_ops()
        batch, steps = gates.shape[0], gates.shape[1]
        need = ctx.needs_input_grad
        units = recurrent_kernel.shape[0]
        if resolved_strategy(units, ctx.impl) == "gemm" and fuse_weight_grads(x2.shape[1], units):
            # Large u: the weight gradients are formed step by step inside the time loop (lstm_cpu.cpp), in
            # float32 even within bfloat16_matmuls(): at these sizes that beats the three bfloat16 GEMMs after
            # the loop (training step of one layer, fused / bfloat16 0.81 at (B, T, F, u) = (256, 200, 128, 64),
            # 0.94 at (256, 200, 300, 128); bench/RESULTS.md).
            dx, d_kernel, d_recurrent, d_bias, dh0, dc0 = ops.lstm_backward_fused(
                dout.contiguous(), dh_t.contiguous(), dc_t.contiguous(), recurrent_kernel, gates, cseq, hprev,
                c0, x2.view(batch, steps, -1), kernel, mask, rdmask, ctx.zero_output, ctx.impl,
            )
            return (dx if need[0] else None, d_kernel if need[1] else None, d_recurrent if need[2] else None,
                    d_bias if ctx.has_bias and need[3] else None, dh0, dc0, None, None, None)
        dz, dh0, dc0 = ops.lstm_backward(
            dout.contiguous(), dh_t.contiguous(), dc_t.contiguous(), recurrent_kernel, gates, cseq,
            c0, mask, rdmask, ctx.zero_output, ctx.impl,
        )
        dz2 = dz.view(-1, dz.shape[-1])
        bf16 = ctx.bf16
        if bf16:
            dz2 = dz2.bfloat16()  # rounded once for the three products below
        dx = linear(dz2, kernel, bf16=bf16).view(gates.shape[0], gates.shape[1], -1) if need[0] else None
        d_kernel = linear(x2.t(), dz2.t(), bf16=bf16) if need[1] else None
        d_recurrent = _recurrent_grad(hprev, dz2.view(dz.shape), rdmask, bf16) if need[2] else None
        d_bias = dz.view(-1, dz.shape[-1]).sum(0) if ctx.has_bias and need[3] else None
        return dx, d_kernel, d_recurrent, d_bias, dh0, dc0, None, None, None


def lstm_sequence_compiled(call: LSTMCall) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compiled CPU float32 path of ``lstm_sequence`` for a checked call.

    The caller has checked that the kernel is loaded and every tensor is a CPU float32 tensor.
    """
    x, kernel, bias = call.x.contiguous(), call.kernel, call.bias
    rk, h0, c0 = call.recurrent_kernel.contiguous(), call.h0.contiguous(), call.c0.contiguous()
    rdmask, zero_output = call.compiled_dropout_mask(), bool(call.zero_output_for_mask)
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in call.weights_and_states())):
        # Inference: no autograd node, nothing saved (inside autograd.Function the weights would still count
        # as requiring grad under torch.no_grad()).
        out, h_t, c_t, *_ = _forward(x, kernel, bias, rk, h0, c0, call.mask, rdmask, zero_output, False,
                                     forced_impl())
        return out, h_t, c_t
    return _FusedLSTM.apply(x, kernel, rk, bias, h0, c0, call.mask, rdmask, zero_output)
