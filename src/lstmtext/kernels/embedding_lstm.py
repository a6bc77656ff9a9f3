"""An Embedding followed by an LSTM, with the input projection moved onto the vocabulary.

``lstm_sequence(LSTMCall(table[ids], kernel, ...))`` first multiplies every embedded token by the LSTM kernel:
``B*T`` rows of ``F x 4u`` work, and the same again twice in the backward (``dx`` and ``dkernel``). Since
``table[ids] @ kernel == (table @ kernel)[ids]``, the product can be taken once per *vocabulary row*:
``V`` rows instead of ``B*T`` (20,000 instead of 51,200 for the stacked IMDB model; 5,000 instead of
38,400 for the tutorial model), and the recurrence reads each step's row of the ``(V, 4u)`` table by
token id (no ``(B, T, 4u)`` tensor). The backward scatters the step gradients into the table gradient and
runs the two weight GEMMs on ``V`` rows. The result is the same function (the float32
sums are taken in a different order, so values agree to rounding). A call with token ids,
``lstm_sequence(LSTMCall(table, kernel, ..., ids=ids))``, takes this path on the CPU.

In inference (no autograd) the projected table is cached until the table, kernel or bias change, so
``predict`` over many batches multiplies the vocabulary once. In training the weights change every step, so
the product is taken anew each step, and only over the rows of the words the batch holds: a batch of real
text holds a fraction of the vocabulary (5,750 of 20,000 words in a 256-review IMDB batch of the stacked
model, 2,900 of 5,000 in the tutorial's 128 reviews), and the vocabulary's other rows would only add zeros
to the gradients.
"""

from __future__ import annotations

import weakref

import torch

from lstmtext.kernels.args import LSTMCall
from lstmtext.kernels.build import load_ops
from lstmtext.kernels.fused import _recurrent_grad, fuse_weight_grads, linear
from lstmtext.kernels.strategies import bfloat16_matmuls_active, forced_impl, resolved_strategy

# The last (table, kernel, bias) projected without autograd: weak references, their versions (bumped by every
# in-place update, the optimizers' included) and the projected table.
_inference_cache: dict[str, tuple[list, list, torch.Tensor]] = {}


def _same(refs: list, versions: list, tensors: tuple) -> bool:
    for ref, version, t in zip(refs, versions, tensors):
        if (ref is None) != (t is None) or (t is not None and (ref() is not t or t._version != version)):
            return False
    return True


# Up to this many embedding features the projection and its gradients are the compiled kernel's one-pass
# ops (ops_cpu.cpp ``table_projection``): as torch ops they are four products and reductions, each its own
# parallel region, and with the passive threads of ``tune_cpu_runtime()`` each pays a thread wake-up that
# costs more than the arithmetic of the tutorial's 5,000 x 15 table (bench/RESULTS.md). Above it oneDNN's
# matmul (the stacked model's 300 features: a compute-bound product).
NARROW_FEATURES = 64


class _Projection(torch.autograd.Function):
    """``table @ kernel + bias``, ``(V, F) x (F, 4u) -> (V, 4u)``: oneDNN's matmul; one-pass ops for narrow F."""

    @staticmethod
    def forward(ctx, table, kernel, bias):
        ctx.save_for_backward(table, kernel)
        ctx.has_bias = bias is not None
        ctx.narrow = table.shape[1] <= NARROW_FEATURES
        if ctx.narrow:
            return load_ops().table_projection(table, kernel, bias)
        return linear(table, kernel.t().contiguous(), bias)

    @staticmethod
    def backward(ctx, dproj):
        table, kernel = ctx.saved_tensors
        dproj = dproj.contiguous()
        need = (*ctx.needs_input_grad[:2], ctx.has_bias and ctx.needs_input_grad[2])
        if ctx.narrow:  # empty tensors for the gradients not asked for
            grads = load_ops().table_projection_backward(dproj, table, kernel, *need)
            return tuple(g if n else None for g, n in zip(grads, need))
        d_table = linear(dproj, kernel) if need[0] else None  # (V, 4u) @ (4u, F)
        d_kernel = torch.mm(table.t(), dproj) if need[1] else None  # (F, V) @ (V, 4u), no transposed copy
        d_bias = dproj.sum(0) if need[2] else None
        return d_table, d_kernel, d_bias


def project_table(table: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``table @ kernel + bias`` with gradients; cached across calls when autograd is off."""
    if torch.is_grad_enabled():
        return _Projection.apply(table, kernel, bias)
    tensors = (table, kernel, bias)
    hit = _inference_cache.get("last")
    if hit is not None and _same(hit[0], hit[1], tensors):
        return hit[2]
    proj = _Projection.apply(table, kernel, bias)
    _inference_cache["last"] = ([None if t is None else weakref.ref(t) for t in tensors],
                                [None if t is None else t._version for t in tensors], proj)
    return proj


# The training step projects only the rows of the words in the batch when they are at most this fraction of
# the vocabulary and the projected vocabulary (V, 4u) float32 is at least this big; otherwise (random ids,
# small tables) the gather of the rows and the zero rows of the table's gradient outside them cost about
# what the skipped rows save. One thread, one Embedding -> LSTM forward+backward on IMDB batches
# (bench/RESULTS.md): stacked model (20,000 x 512 floats, 29 % of the words per batch) 629 -> 453 ms; the
# tutorial's 5,000 x 40 (58 %) 11.1 -> 11.4 ms, hence the size floor.
BATCH_VOCABULARY_MAX_FRACTION = 0.75
BATCH_VOCABULARY_MIN_TABLE_BYTES = 4 << 20


def batch_vocabulary(ids: torch.Tensor, vocab: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(rows, local_ids)`` with ``rows`` the sorted distinct ids of the batch and ``local_ids`` the ids
    renumbered into them (``rows[local_ids] == ids``); ``None`` when they are more than
    :data:`BATCH_VOCABULARY_MAX_FRACTION` of ``vocab`` or an id is out of ``[0, vocab)`` (the kernel then
    reports it)."""
    flat = ids.reshape(-1)
    if flat.numel() == 0:
        return None
    low, high = torch.aminmax(flat)
    if int(low) < 0 or int(high) >= vocab:
        return None
    present = torch.bincount(flat, minlength=vocab) > 0
    rows = present.nonzero().squeeze(1)
    if rows.numel() > BATCH_VOCABULARY_MAX_FRACTION * vocab:
        return None
    local = torch.cumsum(present, 0).sub_(1)  # int64: the new index of each present id
    return rows, local[ids]


# Bytes of per-thread partial table gradients (V x 4u floats each) up to which the backward of the per-row
# vector strategy adds the step gradients into the table gradient inside its time loop, with dR formed there
# too (lstm_cpu.cpp lstm_backward_ids), instead of writing dz (B, T, 4u) and reading it back twice (the dR
# GEMM and the scatter). Tutorial model, one thread, CPU time (bench/RESULTS.md).
FUSED_TABLE_GRADS_MAX_BYTES = 256 << 20


def fuse_table_grads(vocab: int, units: int, impl: int) -> bool:
    """Whether the embedding backward runs inside the recurrence's backward (kVector; partials that fit)."""
    threads = max(1, torch.get_num_threads())
    return (resolved_strategy(units, impl) == "vector"
            and 2 * threads * vocab * 4 * units * 4 <= FUSED_TABLE_GRADS_MAX_BYTES)


class _RecurrenceFromTable(torch.autograd.Function):
    """(proj, recurrent_kernel, h0, c0) -> (outputs, h_T, c_T): the recurrence reads step (b, t)'s input
    projection from row ``ids[b, t]`` of ``proj (V, 4u)``, so ``xz (B, T, 4u)`` is never materialised; the
    backward scatters the step gradients into ``d proj``."""

    @staticmethod
    def forward(ctx, proj, recurrent_kernel, h0, c0, ids, mask, rdmask, zero_output, keep_out):
        ops = load_ops()
        ctx.impl, ctx.zero_output, ctx.vocab = forced_impl(), zero_output, proj.shape[0]
        # The fused table backward recomputes h_{t-1} from the saved gates and c: no h_{t-1} is stored.
        ctx.fused = fuse_table_grads(ctx.vocab, recurrent_kernel.shape[0], ctx.impl)
        # Without keep_out (only h_T is used) the fused path writes no (B, T, u) outputs and its backward
        # reads no dout: `out` is then an empty tensor whose gradient autograd fills with nothing.
        out, h_t, c_t, gates, cseq, hprev = ops.lstm_forward_ids(
            proj, ids, recurrent_kernel, h0, c0, mask, rdmask, zero_output, True, ctx.impl, not ctx.fused,
            keep_out or not ctx.fused
        )
        ctx.save_for_backward(recurrent_kernel, gates, cseq, hprev, h0, c0, ids, mask, rdmask)
        return out, h_t, c_t

    @staticmethod
    def backward(ctx, dout, dh_t, dc_t):
        recurrent_kernel, gates, cseq, hprev, h0, c0, ids, mask, rdmask = ctx.saved_tensors
        ops = load_ops()
        units = recurrent_kernel.shape[0]
        if ctx.fused:
            d_proj, d_recurrent, dh0, dc0 = ops.lstm_backward_ids(
                dout.contiguous() if dout.numel() else None, dh_t.contiguous(), dc_t.contiguous(),
                recurrent_kernel, gates, cseq, h0, c0, ids, ctx.vocab, mask, rdmask, ctx.zero_output, ctx.impl
            )
            return d_proj, d_recurrent, dh0, dc0, None, None, None, None, None
        args = (dout.contiguous(), dh_t.contiguous(), dc_t.contiguous(), recurrent_kernel, gates, cseq)
        if resolved_strategy(units, ctx.impl) == "gemm" and fuse_weight_grads(0, units):
            dz, d_recurrent, _, dh0, dc0 = ops.lstm_backward_dz(
                *args, hprev, c0, mask, rdmask, ctx.zero_output, ctx.impl
            )
        else:
            dz, dh0, dc0 = ops.lstm_backward(*args, c0, mask, rdmask, ctx.zero_output, ctx.impl)
            d_recurrent = _recurrent_grad(hprev, dz, rdmask) if ctx.needs_input_grad[1] else None
        d_proj = ops.embedding_backward(dz, ids, ctx.vocab) if ctx.needs_input_grad[0] else None
        return d_proj, d_recurrent, dh0, dc0, None, None, None, None, None


def lstm_sequence_ids_compiled(
    call: LSTMCall, return_sequences: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compiled CPU float32 path of ``lstm_sequence`` for a call with token ``ids``: the recurrence
    reads each step's input projection from the projected table ``call.x @ kernel + bias`` ``(V, 4u)``.

    The caller (:func:`~lstmtext.kernels.dispatch.lstm_sequence_fused`) has checked that the kernel is
    loaded and every tensor is on the CPU, float32 but the ids. With ``return_sequences=False`` the first
    result is the last step's output ``(B, u)``, formed from ``h_T``; the per-row vector strategy then
    neither writes the ``(B, T, u)`` outputs nor reads their gradient.

    >>> from lstmtext.kernels import LSTMCall, lstm_sequence
    >>> table, ids = torch.randn(50, 4), torch.randint(0, 50, (2, 7))
    >>> k, r, h = torch.randn(4, 12), torch.randn(3, 12), torch.zeros(2, 3)
    >>> out, _, _ = lstm_sequence(LSTMCall(table, k, r, None, h, h, ids=ids))
    >>> bool(torch.allclose(out, lstm_sequence(LSTMCall(table[ids], k, r, None, h, h))[0], atol=1e-5))
    True
    """
    ops = load_ops()
    zero_output = bool(call.zero_output_for_mask)
    mask, rd = call.mask, call.compiled_dropout_mask()
    ids = call.ids.to(torch.int64).contiguous()
    args = (call.recurrent_kernel.contiguous(), call.h0.contiguous(), call.c0.contiguous())
    table = call.x
    training = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (table, call.kernel, call.bias, *args))
    if training and table.shape[0] * 4 * call.units * 4 >= BATCH_VOCABULARY_MIN_TABLE_BYTES:
        local = batch_vocabulary(ids, table.shape[0])
        if local is not None:  # only the batch's words: (U, F) rows, ids renumbered into them
            table, ids = table.index_select(0, local[0]), local[1]
    proj = project_table(table, call.kernel, call.bias)  # (V or U, 4u)
    if not training:
        # Inference: nothing is kept for a backward (autograd.Function would see the weights' requires_grad).
        out, h_t, c_t, *_ = ops.lstm_forward_ids(proj, ids, *args, mask, rd, zero_output, False,
                                                 forced_impl(), True, return_sequences, bfloat16_matmuls_active())
    else:
        out, h_t, c_t = _RecurrenceFromTable.apply(proj, *args, ids, mask, rd, zero_output, return_sequences)
    if return_sequences:
        return out, h_t, c_t
    return _last_output(h_t, mask, zero_output), h_t, c_t


def _last_output(h_t: torch.Tensor, mask: torch.Tensor | None, zero_output_for_mask: bool) -> torch.Tensor:
    """``outputs[:, -1]`` from ``h_T``: a masked step repeats the last real step's output (``h_T``, since h is
    carried), or outputs zeros with ``zero_output_for_mask``; a row with no real step outputs the zeros Keras
    starts from (its ``h_T`` is ``h0``)."""
    if mask is None:
        return h_t
    keep = mask[:, -1:] if zero_output_for_mask else mask.any(1, keepdim=True)
    return h_t * keep.to(h_t.dtype)
