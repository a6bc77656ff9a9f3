"""Compiled CPU versions of the non-LSTM parts of a training step: embedding, dropout, Adam (``ops_cpu.cpp``).

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
