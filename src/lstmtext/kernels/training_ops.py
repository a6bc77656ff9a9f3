"""Compiled CPU versions of the non-LSTM parts of a training step: embedding, dropout, Adam and the softmax
cross-entropy of a logits buffer (``ops_cpu.cpp``).

Each function takes the compiled path for CPU float32 tensors when the kernel library is loaded and falls
back to plain PyTorch otherwise (other dtypes, CUDA, ``LSTMTEXT_DISABLE_KERNEL=1``, no compiler). Both paths
compute the same function: the embedding and Adam to float32 rounding (the compiled embedding gradient sums
each row's contributions in input order; Adam follows the formula of Keras's torch backend in one pass),
dropout in distribution (each element kept independently with probability ``1 - rate``, kept values
divided by ``1 - rate``, as ``keras.random.dropout``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lstmtext.kernels.build import load_ops


def _compiled(*tensors: torch.Tensor):
    """The loaded ops when every tensor is a CPU float32 tensor, else None."""
    if all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors):
        return load_ops()
    return None


class _Embedding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, ids):
        ctx.save_for_backward(ids)
        ctx.vocab = weight.shape[0]
        return load_ops().embedding_forward(weight, ids)

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        return load_ops().embedding_backward(grad.contiguous(), ids, ctx.vocab), None


def embedding_lookup(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``weight[ids]`` with a dense gradient for ``weight``, as ``F.embedding`` (no padding_idx, no max_norm).

    Args:
        weight: ``(V, E)`` table.
        ids: integer ids of any shape, in ``[0, V)``.

    Returns:
        ``(*ids.shape, E)``.

    Raises:
        IndexError: an id outside ``[0, V)``.

    >>> embedding_lookup(torch.eye(3), torch.tensor([[2, 0]])).tolist()
    [[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]
    """
    ops = _compiled(weight)
    if ops is None or ids.device.type != "cpu" or not weight.is_contiguous():
        return F.embedding(ids, weight)
    return _Embedding.apply(weight, ids.to(torch.int64).contiguous())


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rate, seed):
        ctx.rate, ctx.seed = rate, seed
        return load_ops().dropout_apply(x, rate, seed)

    @staticmethod
    def backward(ctx, grad):
        # The mask is a function of (seed, element index): recomputed, never stored.
        return load_ops().dropout_apply(grad.contiguous(), ctx.rate, ctx.seed), None, None


def dropout(x: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout: each element kept with probability ``1 - rate`` and divided by it, else zero.

    The compiled path draws one 62-bit seed from ``generator`` (the global generator when None, so
    ``set_random_seed`` and saved RNG states reproduce it) and derives every element's keep bit from the
    seed and the element's index with a counter-based hash; the backward recomputes the same bits.

    Args:
        x: input of any shape.
        rate: drop probability in ``[0, 1)``.
        generator: a CPU ``torch.Generator``, or None.

    Returns:
        A tensor shaped like ``x``.

    >>> y = dropout(torch.ones(1000), 0.25)
    >>> len(set(y.tolist()))  # zeros and 1 / 0.75
    2
    """
    ops = _compiled(x)
    if ops is None or rate <= 0.0 or x.numel() >= 2**32:
        if rate <= 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - rate, generator=generator)
        return torch.where(keep.bool(), x / (1.0 - rate), torch.zeros((), dtype=x.dtype, device=x.device))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return _Dropout.apply(x.contiguous(), float(rate), seed)


def adam_update_(params: list[torch.Tensor], grads: list[torch.Tensor], momentums: list[torch.Tensor],
                 velocities: list[torch.Tensor], alpha: float, beta_1: float, beta_2: float, epsilon: float) -> bool:
    """Keras's Adam step (no amsgrad) on every parameter in one fused pass each, in place.

    ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g^2``; ``p -= alpha*m / (sqrt(v) + epsilon)``, where
    ``alpha`` already holds the bias correction. Returns False (nothing done) unless every tensor is a
    contiguous CPU float32 tensor and the compiled kernel is loaded; the caller then runs its own update.
    """
    tensors = [*params, *grads, *momentums, *velocities]
    ops = _compiled(*tensors) if tensors else None
    if ops is None or not all(t.is_contiguous() for t in [*params, *momentums, *velocities]):
        return False
    for p, g, m, v in zip(params, grads, momentums, velocities):
        ops.adam_update(p, g, m, v, alpha, beta_1, beta_2, epsilon)
        # Written in place behind autograd's back: bump the version as a torch in-place op would, so that
        # caches keyed on it (the projected embedding table of inference) see the new values.
        torch.autograd.graph.increment_version(p)
    return True


def softmax_nll(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row negative log-likelihood of ``target`` under ``softmax(logits)``, without writing ``logits``.

    Args:
        logits: ``(N, C)``.
        target: ``(N,)`` int64 classes in ``[0, C)``.

    Returns:
        ``(nll, lse)``, both ``(N,)``: ``lse[i] = logsumexp(logits[i])`` and ``nll[i] = lse[i] -
        logits[i, target[i]]``. ``lse`` is what :func:`softmax_nll_grad_` needs beside the logits.

    The compiled path reads the buffer once per row (twice from L1); torch's ``logsumexp`` makes a
    temporary of the buffer's size.

    >>> nll, lse = softmax_nll(torch.zeros(1, 4), torch.tensor([2]))
    >>> round(nll.item(), 4) == round(lse.item(), 4) == 1.3863
    True
    """
    ops = _compiled(logits)
    if ops is not None and logits.is_contiguous() and logits.dim() == 2:
        nll, lse = ops.softmax_nll_forward(logits, target.to(torch.int64).contiguous())
        return nll, lse
    lse = torch.logsumexp(logits, dim=1)
    return lse - logits.gather(1, target.unsqueeze(1)).squeeze(1), lse


def softmax_nll_grad_(logits: torch.Tensor, lse: torch.Tensor, grad: torch.Tensor,
                      target: torch.Tensor) -> torch.Tensor:
    """The gradient of :func:`softmax_nll` with respect to the logits, written over ``logits`` and returned.

    ``logits[i, j] <- (softmax(logits[i])[j] - [j == target[i]]) * grad[i]``, in one read-write pass on the
    compiled path (torch's ``sub_``, ``exp_`` and ``mul_`` make three).
    """
    ops = _compiled(logits, lse, grad)
    if ops is not None and logits.is_contiguous() and logits.dim() == 2:
        out = ops.softmax_nll_backward_(logits, lse, grad, target.to(torch.int64).contiguous())
        # A custom op does not bump the version counter itself: without this a graph holding ``logits``
        # would not notice that they were overwritten.
        torch.autograd.graph.increment_version(logits)
        return out
    g = logits.sub_(lse.unsqueeze(1)).exp_().mul_(grad.unsqueeze(1))
    flat = torch.arange(g.shape[0], device=g.device) * g.shape[1] + target
    g.view(-1).index_add_(0, flat, grad.neg())
    return g
