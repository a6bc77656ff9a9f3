"""The LSTM sequence math shared by :class:`~lstmtext.layers.LSTM` and its tests.

Three pieces, each matching Keras 3 (``keras/src/backend/torch/rnn.py`` and ``layers/rnn/lstm.py``):

* :func:`keras_to_torch_lstm_weights` / :func:`torch_to_keras_lstm_weights`: the one mapping between
  Keras's LSTM weights and PyTorch's fused layout (``torch.nn.LSTM``, oneDNN, cuDNN);
* :func:`lstm_cell_loop`: the reference sequence loop, with Keras's masking rules;
* :func:`draw_dropout_masks`: Keras's variational dropout masks (one per call, fixed over time).

Keras's masking rules, checked against Keras 3.15: at a masked step the state ``(h, c)`` is carried
unchanged and the output is the previous step's output (zeros before the first real step, whatever the
initial state), or zeros with ``zero_output_for_mask``. The last output is the output of the last step,
so it follows the same rule.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

import torch

Activation = Callable[[torch.Tensor], torch.Tensor]


def keras_to_torch_lstm_weights(
    kernel: torch.Tensor, recurrent_kernel: torch.Tensor, bias: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Map Keras LSTM weights to PyTorch's fused layout (``torch.nn.LSTM``'s ``*_l0`` parameters).

    Keras and PyTorch share the gate order (i, f, c, o), so the mapping is a transpose; Keras has one
    bias where PyTorch has two that are summed, so all of it goes to ``bias_ih`` and ``bias_hh`` is zero.
    The results keep the autograd graph (gradients flow back to the Keras weights).

    Args:
        kernel: ``(input_dim, 4 * units)``.
        recurrent_kernel: ``(units, 4 * units)``.
        bias: ``(4 * units,)``, or None for ``use_bias=False`` (both torch biases are then zero).

    Returns:
        ``{"weight_ih_l0": (4u, input_dim), "weight_hh_l0": (4u, u), "bias_ih_l0": (4u,),
        "bias_hh_l0": (4u,)}``.

    >>> w = keras_to_torch_lstm_weights(torch.zeros(15, 40), torch.zeros(10, 40), torch.zeros(40))
    >>> w["weight_ih_l0"].shape
    torch.Size([40, 15])
    """
    four_u = recurrent_kernel.shape[1]
    zeros = torch.zeros(four_u, dtype=kernel.dtype, device=kernel.device)
    return {
        "weight_ih_l0": kernel.t().contiguous(),
        "weight_hh_l0": recurrent_kernel.t().contiguous(),
        "bias_ih_l0": bias.contiguous() if bias is not None else zeros,
        "bias_hh_l0": zeros.clone(),
    }


def torch_to_keras_lstm_weights(
    weight_ih: torch.Tensor, weight_hh: torch.Tensor, bias_ih: torch.Tensor | None, bias_hh: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inverse of :func:`keras_to_torch_lstm_weights`: ``(kernel, recurrent_kernel, bias)``.

    The two PyTorch biases are summed into Keras's one (they only ever appear as a sum).
    """
    four_u = weight_hh.shape[0]
    bias = torch.zeros(four_u, dtype=weight_ih.dtype, device=weight_ih.device)
    if bias_ih is not None:
        bias = bias + bias_ih
    if bias_hh is not None:
        bias = bias + bias_hh
    return weight_ih.t().contiguous(), weight_hh.t().contiguous(), bias


def draw_dropout_masks(
    shape: tuple[int, ...], rate: float, count: int, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Keras's ``backend.random.dropout(ones, rate)`` masks: keep with ``1 - rate``, kept entries ``1/(1-rate)``.

    Returns:
        ``(count, *shape)``, of ``like``'s dtype and device.
    """
    keep = torch.empty((count, *shape), dtype=like.dtype, device=like.device)
    keep.bernoulli_(1.0 - rate, generator=generator)
    return keep.div_(1.0 - rate)


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


_KERNELS: ModuleType | None = None
_KERNELS_ERROR: str | None = None


def fused_kernels() -> tuple[ModuleType | None, str | None]:
    """``(lstmtext.kernels, None)`` when the fused implementation can be imported, else ``(None, why)``."""
    global _KERNELS, _KERNELS_ERROR
    if _KERNELS is None and _KERNELS_ERROR is None:
        try:
            mod = importlib.import_module("lstmtext.kernels")
            if not hasattr(mod, "lstm_sequence") or not hasattr(mod, "fused_available"):
                raise ImportError("lstmtext.kernels has no lstm_sequence/fused_available")
            _KERNELS = mod
        except ImportError as e:
            _KERNELS_ERROR = f"the fused kernels cannot be imported ({e})"
    return _KERNELS, _KERNELS_ERROR


def lstm_fused(
    kernels: ModuleType,
    x: torch.Tensor,
    kernel: torch.Tensor,
    recurrent_kernel: torch.Tensor,
    bias: torch.Tensor | None,
    h0: torch.Tensor,
    c0: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    input_masks: torch.Tensor | None = None,
    recurrent_masks: torch.Tensor | None = None,
    zero_output_for_mask: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`lstm_cell_loop`'s result from ``kernels.lstm_sequence`` (tanh/sigmoid LSTMs only).

    Input dropout is applied here: one shared mask multiplies ``x``; four per-gate masks (Keras's
    implementation 1) become one wider input ``[x*m_i, x*m_f, x*m_c, x*m_o]`` against the block-diagonal
    kernel, which gives each gate's projection its own mask in one matmul. ``recurrent_masks`` ``(4, B, u)``
    are passed through (only to a kernel module with ``SUPPORTS_GATE_DROPOUT_MASKS``).
    """
    if input_masks is not None:
        if input_masks.shape[0] == 1:
            x = x * input_masks[0].unsqueeze(1)
        else:
            x = torch.cat([x * input_masks[g].unsqueeze(1) for g in range(4)], dim=-1)  # (B, T, 4F)
            kernel = torch.block_diag(*kernel.chunk(4, dim=1))  # (4F, 4u)
    return kernels.lstm_sequence(
        x, kernel, recurrent_kernel, bias, h0, c0, mask=mask, recurrent_dropout_mask=recurrent_masks,
        zero_output_for_mask=zero_output_for_mask,
    )
