"""``lstm_sequence``: one Keras LSTM over a batch-major sequence, on the fastest exact path available.

``lstm_sequence_fused`` makes the decision (the one place it is made) and says which path ran, or raises
``NotImplementedError`` when no fused path serves the call; ``lstm_sequence`` then runs the reference loop.
Both take one :class:`~lstmtext.kernels.args.LSTMCall`. Paths, in order:

* **CPU, float32, compiled kernel loaded** (``fused_available``): the C++ recurrence of ``lstm_cpu.cpp``
  with the input projection and weight gradients as big GEMMs (``fused.py``), or, for a call with token
  ``ids``, with the input projection taken once per vocabulary row (``embedding_lstm.py``). Serves every
  mask (left-/right-padded, holes, fully masked rows), ``zero_output_for_mask`` and recurrent dropout.
* **CUDA, no recurrent dropout, mask ``None`` or one contiguous block of real steps per row**
  (right-padded, left-padded, fully masked rows): cuDNN through ``torch._VF.lstm`` (packed sequences for
  masks; see ``packed.py``).
* **Otherwise** (float64, other dtypes, CUDA with recurrent dropout or masks with holes, no compiler,
  ``LSTMTEXT_DISABLE_KERNEL=1``): ``NotImplementedError`` from ``lstm_sequence_fused``; the pure-PyTorch
  time loop of ``reference.py`` in ``lstm_sequence``.

All paths compute the same function and are differentiable w.r.t. ``x``, the weights and the initial states.
A new compiled strategy or ISA is chosen inside the compiled kernel (``strategies.py``), not here.
"""

from __future__ import annotations

import torch

from lstmtext.kernels.args import LSTMCall
from lstmtext.kernels.build import load_ops
from lstmtext.kernels.embedding_lstm import lstm_sequence_ids_compiled
from lstmtext.kernels.fused import lstm_sequence_compiled
from lstmtext.kernels.packed import contiguous_block_bounds, lstm_sequence_packed
from lstmtext.kernels.reference import lstm_sequence_reference
from lstmtext.kernels.strategies import resolved_strategy


def fused_available(device: torch.device | str | None = None) -> bool:
    """Whether a compiled or vendor-fused LSTM path serves ``device`` (default CPU).

    CPU: the compiled kernel builds/loads (first call may compile it). CUDA: cuDNN is available.

    >>> isinstance(fused_available("cpu"), bool)
    True
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cpu":
        return load_ops() is not None
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.backends.cudnn.is_available()
    return False


def lstm_sequence(call: LSTMCall) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs a Keras LSTM (tanh / sigmoid) over a batch-major sequence on the fastest exact path.

    Each step computes ``z = x_t @ kernel + (h_{t-1} * rdmask) @ recurrent_kernel + bias``, splits it into
    gates i, f, c, o (Keras order), ``c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(c)`` and
    ``h_t = sigmoid(o) * tanh(c_t)``. At a masked step (mask False) h and c are carried unchanged and the
    output repeats the previous output (zeros before the first real step, as Keras's ``rnn`` loop), or
    is zeros when ``zero_output_for_mask``.

    Args:
        call: the inputs, weights, initial states, mask and recurrent dropout (:class:`LSTMCall`, whose
            construction checks the shapes); with ``call.ids`` the inputs are rows of the table ``call.x``.

    Returns:
        ``(outputs, h_T, c_T)``: ``(B, T, u)`` outputs and the final carried ``(B, u)`` states.

    >>> B, T, F, u = 2, 4, 3, 5
    >>> out, h, c = lstm_sequence(LSTMCall(
    ...     torch.randn(B, T, F), torch.randn(F, 4 * u), torch.randn(u, 4 * u), torch.zeros(4 * u),
    ...     torch.zeros(B, u), torch.zeros(B, u), mask=torch.tensor([[False, True, True, True],
    ...                                                              [True, True, False, False]])))
    >>> tuple(out.shape), bool(out[0, 0].eq(0).all())
    ((2, 4, 5), True)
    """
    try:
        return lstm_sequence_fused(call)[:3]
    except NotImplementedError:
        return lstm_sequence_reference(call)


def lstm_sequence_fused(
    call: LSTMCall, *, return_sequences: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """:func:`lstm_sequence` on a fused path only: the one place where the fast path is decided.

    Args:
        call: as :func:`lstm_sequence`.
        return_sequences: when False the first result is the last step's output ``(B, u)`` only (Keras's
            ``return_sequences=False``); the compiled kernel's per-row vector strategy then neither writes
            the ``(B, T, u)`` outputs nor reads their gradient.

    Returns:
        ``(outputs, h_T, c_T, path)``, ``path`` naming what ran: ``"cpu:<strategy>"`` (the compiled
        kernel and its strategy, see :mod:`~lstmtext.kernels.strategies`; ``"+vocabulary projection"``
        added for a call with ``ids``) or ``"cudnn"``.

    Raises:
        NotImplementedError: no fused path serves this call (the message says why); the caller runs its
            reference loop, as Keras's layers do when a backend's fused LSTM declines.
    """
    dev = call.x.device
    if dev.type == "cpu":
        if not all(t.dtype == torch.float32 and t.device.type == "cpu" for t in call.weights_and_states()):
            raise NotImplementedError("the compiled CPU LSTM kernel takes float32 CPU tensors only")
        if call.ids is not None and call.ids.device.type != "cpu":
            raise NotImplementedError("the compiled CPU LSTM kernel takes CPU token ids only")
        if load_ops() is None:
            raise NotImplementedError("the compiled CPU LSTM kernel is not available (disabled or failed to build)")
        strategy = "cpu:" + resolved_strategy(call.units)
        if call.ids is not None:
            out, h, c = lstm_sequence_ids_compiled(call, return_sequences)
            return out, h, c, strategy + "+vocabulary projection"
        out, h, c = lstm_sequence_compiled(call)
        return (out if return_sequences else out[:, -1]), h, c, strategy
    if dev.type != "cuda" or not torch.backends.cudnn.is_available():
        raise NotImplementedError(f"no fused LSTM for device {dev}")
    if call.recurrent_dropout_mask is not None:
        raise NotImplementedError("cuDNN's LSTM has no recurrent dropout")
    bounds = contiguous_block_bounds(call.mask) if call.mask is not None else None
    if call.mask is not None and bounds is None:
        raise NotImplementedError("cuDNN's LSTM needs one contiguous block of real steps per row (a mask with holes)")
    out, h, c = lstm_sequence_packed(call, bounds)
    return (out if return_sequences else out[:, -1]), h, c, "cudnn"
