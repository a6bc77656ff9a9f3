"""The compiled CPU kernel's strategies for the LSTM recurrence, and ``force_impl`` to pin one.

The list comes from the compiled library itself (``lstm_cpu.cpp``: ``kStrategyNames`` and its selector
``resolve_impl``), so adding a strategy there is all it takes for it to appear here, in ``force_impl`` and
in the tests that run every strategy. ``"auto"`` lets the selector choose by shape and CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from lstmtext.kernels.build import load_ops

_forced: ContextVar[int] = ContextVar("lstmtext_forced_strategy", default=0)  # 0 = "auto"
_bf16: ContextVar[bool] = ContextVar("lstmtext_bfloat16_matmuls", default=False)


def strategy_names() -> list[str]:
    """Every strategy the compiled kernel knows, ``"auto"`` first; ``[]`` without the compiled kernel."""
    ops = load_ops()
    return list(ops.strategy_names()) if ops is not None else []


def available_strategies() -> list[str]:
    """The strategies built for this CPU (``"auto"`` excluded): e.g. ``lanes`` and ``vector`` need AVX2 + FMA.

    >>> isinstance(available_strategies(), list)
    True
    """
    ops = load_ops()
    if ops is None:
        return []
    return [n for i, n in enumerate(ops.strategy_names()) if i > 0 and ops.strategy_available(i)]


@contextmanager
def _set_for_context(var: ContextVar, value: object) -> Iterator[None]:
    """``var`` holds ``value`` inside the ``with`` block (this thread or task only) and its old value after."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


@contextmanager
def force_impl(name: str) -> Iterator[None]:
    """Within the block, the compiled CPU kernel runs strategy ``name`` wherever it can serve the shape.

    A strategy that cannot serve a shape (the per-row ones above u = 48) leaves the choice to the selector
    there. The setting is per thread and per asyncio task (a context variable), so concurrent callers do
    not see each other's choice.

    Args:
        name: one of :func:`strategy_names`.

    Raises:
        ValueError: ``name`` is not a strategy of the compiled kernel.
        NotImplementedError: the compiled kernel is unavailable, or ``name`` is not built for this CPU.

    >>> with force_impl("rows"):
    ...     pass
    """
    names = strategy_names()
    if not names:
        raise NotImplementedError("force_impl: the compiled CPU LSTM kernel is not available in this process")
    if name not in names:
        raise ValueError(f"force_impl: unknown strategy {name!r}; expected one of {names}")
    impl = names.index(name)
    if impl and not load_ops().strategy_available(impl):
        raise NotImplementedError(f"force_impl: strategy {name!r} is not built for this CPU "
                                  f"(available: {available_strategies()})")
    with _set_for_context(_forced, impl):
        yield


def forced_impl() -> int:
    """The strategy number to pass to the compiled ops: 0 (``"auto"``) unless :func:`force_impl` is active."""
    return _forced.get()


def resolved_strategy(units: int, impl: int | None = None) -> str:
    """The name of the strategy the kernel runs for ``units`` under ``impl`` (default: the forced one)."""
    ops = load_ops()
    return ops.strategy_names()[ops.resolved_impl(units, forced_impl() if impl is None else impl)]


def bfloat16_supported() -> bool:
    """Whether oneDNN runs bfloat16 matrix products natively on this CPU (AVX512_BF16 / AMX / AVX512 BW+VL)."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    check = getattr(mkldnn, "_is_mkldnn_bf16_supported", None) if mkldnn is not None else None
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


@contextmanager
def bfloat16_matmuls(enabled: bool = True) -> Iterator[None]:
    """Within the block, the compiled CPU LSTM's big matrix products run in bfloat16 (opt-in, reduced precision).

    The input projection ``x @ kernel`` and the weight and input gradients (``dx``, ``dkernel``,
    ``drecurrent``) are taken with bfloat16 operands and float32 accumulation (oneDNN; about twice the
    float32 rate on CPUs with AVX512_BF16). In inference (no autograd) the per-step products of the
    per-step GEMM strategy (u > 48) are bfloat16 too where the kernel build has AVX512_BF16
    (``load_ops().has_bf16_impl()``): ``h_{t-1} @ recurrent_kernel`` and, where each step projects its own
    inputs, ``x_t @ kernel``, rounded to bfloat16 each step with float32 sums (0.64x the float32 time of the
    stacked IMDB model's LSTM(128) and LSTM(64) in ``predict``, bench/RESULTS.md). In training the
    recurrence stays float32. The gate math, the states and every weight stay float32. Outputs then differ
    from the float32 path by bfloat16 rounding (about 3 significant digits), as with Keras's
    ``mixed_bfloat16`` policy. Not affected, being faster in float32: the per-row strategies of small layers
    (u <= 48), the vocabulary projection, the training forward of layers whose kernel is at most 1 MB (their
    inputs are projected step by step) and the backward of layers whose weight gradients are formed inside the
    time loop (kernel and recurrent kernel together at most 1 MB). Per thread and per asyncio task.

    Raises:
        NotImplementedError: the CPU has no native bfloat16 matrix products (oneDNN would emulate them slowly).

    >>> with bfloat16_matmuls(False):
    ...     pass
    """
    if enabled and not bfloat16_supported():
        raise NotImplementedError("bfloat16_matmuls: this CPU has no native bfloat16 matrix products")
    with _set_for_context(_bf16, bool(enabled)):
        yield


def bfloat16_matmuls_active() -> bool:
    """Whether :func:`bfloat16_matmuls` is on in this context."""
    return _bf16.get()
