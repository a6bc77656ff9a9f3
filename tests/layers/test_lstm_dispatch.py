"""The fused path: when the LSTM takes it, and that it gives the cell loop's outputs and gradients.

``test_fused_matches_loop`` runs against the real ``lstmtext.kernels`` when it is importable. The same
checks also run against a reference implementation of the kernel contract (a plain step loop written
from the contract, installed as ``lstmtext.kernels``), which pins down what the layer passes to the kernel:
batch-major inputs after ``go_backwards``/``time_major``, input dropout applied, masks, states.
"""

from __future__ import annotations

import itertools
import sys
import types

import pytest
import torch
from layer_testing import fused_available

from lstmtext.errors import ConfigError
from lstmtext.layers import LSTM, Bidirectional, lstm_ops
from lstmtext.layers.lstm_ops import draw_dropout_masks

B, T, F, U = 3, 6, 4, 5
MASKS = {
    "none": None,
    "left_padded": [[0, 0, 1, 1, 1, 1], [1] * 6, [0, 0, 0, 0, 0, 1]],
    "right_padded": [[1, 1, 1, 1, 0, 0], [1] * 6, [1, 0, 0, 0, 0, 0]],
    "fully_masked_row": [[0, 0, 1, 1, 1, 1], [0] * 6, [1, 1, 1, 1, 1, 0]],
}


def reference_lstm_sequence(x, kernel, recurrent_kernel, bias, h0, c0, mask=None, recurrent_dropout_mask=None,
                            zero_output_for_mask=False):
    """The kernel contract, step by step (per-gate recurrent masks ``(4, B, u)`` too)."""
    u = recurrent_kernel.shape[0]
    h, c, prev, outs = h0, c0, torch.zeros_like(h0), []
    for t in range(x.shape[1]):
        if recurrent_dropout_mask is None:
            rec = h @ recurrent_kernel
        elif recurrent_dropout_mask.dim() == 2:
            rec = (h * recurrent_dropout_mask) @ recurrent_kernel
        else:
            rec = torch.cat([(h * recurrent_dropout_mask[g]) @ recurrent_kernel[:, g * u:(g + 1) * u]
                             for g in range(4)], dim=1)
        z = x[:, t] @ kernel + rec + (bias if bias is not None else 0)
        i, f, g_, o = torch.sigmoid(z[:, :u]), torch.sigmoid(z[:, u:2 * u]), torch.tanh(z[:, 2 * u:3 * u]), \
            torch.sigmoid(z[:, 3 * u:])
        c_new = f * c + i * g_
        h_new = o * torch.tanh(c_new)
        if mask is None:
            h, c, out = h_new, c_new, h_new
        else:
            m = mask[:, t:t + 1]
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            out = torch.where(m, h_new, torch.zeros_like(h_new) if zero_output_for_mask else prev)
            prev = out
        outs.append(out)
    return torch.stack(outs, 1), h, c


@pytest.fixture
def reference_kernels(monkeypatch):
    mod = types.ModuleType("lstmtext.kernels")
    mod.calls = []

    def lstm_sequence_fused(call, *, return_sequences=True):
        call = call.embedded()
        mod.calls.append((tuple(call.x.shape), call))
        if mod.decline:
            raise NotImplementedError(mod.decline)
        out, h, c = reference_lstm_sequence(call.x, call.kernel, call.recurrent_kernel, call.bias, call.h0, call.c0,
                                            call.mask, call.recurrent_dropout_mask, call.zero_output_for_mask)
        return (out if return_sequences else out[:, -1]), h, c, "test:reference"

    mod.decline = None
    mod.lstm_sequence_fused = lstm_sequence_fused
    mod.fused_available = lambda device: True
    mod.SUPPORTS_GATE_DROPOUT_MASKS = True
    monkeypatch.setitem(sys.modules, "lstmtext.kernels", mod)
    monkeypatch.setattr(lstm_ops, "_KERNELS", None)
    monkeypatch.setattr(lstm_ops, "_KERNELS_ERROR", None)
    return mod


def _run_both(kw, mask, device, training=False, dropout=0.0, recurrent_dropout=0.0, initial_state=False):
    """Outputs and gradients of the fused path and the cell loop for the same weights, masks and inputs."""
    torch.manual_seed(0)
    fused = LSTM(U, dropout=dropout, recurrent_dropout=recurrent_dropout, use_cudnn=True, **kw).to(device)
    loop = LSTM(U, dropout=dropout, recurrent_dropout=recurrent_dropout, use_cudnn=False, **kw).to(device)
    shape = (T, B, F) if kw.get("time_major") else (B, T, F)
    fused.build(shape)
    loop.build(shape)
    with torch.no_grad():
        fused.cell.bias.normal_() if fused.cell.bias is not None else None
    loop.set_weights(fused.get_weights())
    x = torch.randn(shape, device=device)
    m = None if mask is None else torch.tensor(mask, dtype=torch.bool, device=device)
    if m is not None and kw.get("time_major"):
        m = m.T
    state = [torch.randn(B, U, device=device) for _ in range(2)] if initial_state else None
    count = fused.cell.dropout_mask_count
    g = torch.Generator(device=device).manual_seed(1)
    results = []
    for layer in (fused, loop):
        if training:
            layer.cell._dropout_mask = draw_dropout_masks((B, F), dropout, count, x, g.manual_seed(1)) \
                if dropout else None
            layer.cell._recurrent_dropout_mask = draw_dropout_masks((B, U), recurrent_dropout, count, x,
                                                                     g.manual_seed(2)) if recurrent_dropout else None
        xr = x.clone().requires_grad_(True)
        outs = []
        for _ in range(2 if kw.get("stateful") else 1):
            out = layer(xr, mask=m, training=training, initial_state=state)
            outs.extend(out if isinstance(out, list) else [out])
        sum((o * torch.linspace(0.5, 1.5, o.shape[-1], device=device)).sum() for o in outs).backward()
        grads = [xr.grad] + [p.grad for p in layer.parameters()]
        results.append((outs, grads, layer.last_path))
    return results


def _check_fused_matches_loop(kw, mask, device, **run):
    (f_out, f_grad, f_path), (l_out, l_grad, l_path) = _run_both(kw, mask, device, **run)
    assert (f_path, l_path) == ("fused", "loop")
    for a, b in zip(f_out, l_out):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    for a, b in zip(f_grad, l_grad):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


ARG_SETS = [
    {},
    {"return_sequences": True},
    {"return_sequences": True, "return_state": True, "go_backwards": True},
    {"return_sequences": True, "zero_output_for_mask": True},
    {"return_state": True, "use_bias": False},
    {"stateful": True, "return_sequences": True},
    {"time_major": True, "return_sequences": True, "go_backwards": True},
]
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]
CASES = list(itertools.product(range(len(ARG_SETS)), MASKS))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("args", "mask_kind"), CASES)
def test_fused_matches_loop(device, args, mask_kind):
    if not fused_available(device):
        pytest.skip(f"lstmtext.kernels (the fused LSTM) is not available on {device} here")
    _check_fused_matches_loop(ARG_SETS[args], MASKS[mask_kind], device, initial_state=args % 2 == 1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dropout", "recurrent_dropout"), [(0.3, 0.0), (0.3, 0.4), (0.0, 0.4)])
def test_fused_matches_loop_with_dropout(device, dropout, recurrent_dropout):
    kernels, _ = lstm_ops.fused_kernels()
    if not fused_available(device):
        pytest.skip(f"lstmtext.kernels (the fused LSTM) is not available on {device} here")
    if recurrent_dropout and not getattr(kernels, "SUPPORTS_GATE_DROPOUT_MASKS", False):
        pytest.skip("lstmtext.kernels does not take per-gate recurrent dropout masks")
    _check_fused_matches_loop({"return_sequences": True}, MASKS["left_padded"], device, training=True,
                              dropout=dropout, recurrent_dropout=recurrent_dropout)


@pytest.mark.parametrize(("args", "mask_kind"), CASES)
def test_layer_passes_the_contract_to_the_kernel(reference_kernels, args, mask_kind):
    _check_fused_matches_loop(ARG_SETS[args], MASKS[mask_kind], "cpu", initial_state=args % 2 == 1)
    shape, call = reference_kernels.calls[0]
    assert shape == (B, T, F)  # batch-major, whatever time_major says
    assert (call.mask is None) == (MASKS[mask_kind] is None)


@pytest.mark.parametrize(("dropout", "recurrent_dropout"), [(0.3, 0.0), (0.3, 0.4), (0.0, 0.4)])
def test_dropout_reaches_the_kernel_as_keras_applies_it(reference_kernels, dropout, recurrent_dropout):
    _check_fused_matches_loop({"return_sequences": True}, MASKS["left_padded"], "cpu", training=True,
                              dropout=dropout, recurrent_dropout=recurrent_dropout)
    shape, call = reference_kernels.calls[0]
    # Per-gate input masks (with recurrent dropout) widen the input to [x*m_i, x*m_f, x*m_c, x*m_o].
    assert shape == (B, T, 4 * F if recurrent_dropout and dropout else F)
    rdm = call.recurrent_dropout_mask
    assert (rdm is None) == (recurrent_dropout == 0) and (rdm is None or rdm.shape == (4, B, U))


def test_kernel_without_gate_masks_gets_no_recurrent_dropout(reference_kernels):
    del reference_kernels.SUPPORTS_GATE_DROPOUT_MASKS
    layer = LSTM(U, recurrent_dropout=0.3)
    x = torch.randn(B, T, F)
    layer(x, training=False)
    assert layer.last_path == "fused"
    layer(x, training=True)
    assert layer.last_path == "loop"
    assert "one mask per gate" in layer.fused_impediment("cpu", training=True)
    with pytest.raises(ConfigError, match="recurrent_dropout needs one mask per gate"):
        LSTM(U, recurrent_dropout=0.3, use_cudnn=True)(x, training=True)


def test_device_without_fused_kernel_runs_the_loop(reference_kernels):
    reference_kernels.fused_available = lambda device: False
    layer = LSTM(U)
    layer(torch.randn(B, T, F))
    assert layer.last_path == "loop"
    assert layer.fused_impediment("cpu") == "lstmtext.kernels has no fused LSTM for device cpu"


def test_bidirectional_takes_the_fused_path(reference_kernels):
    bi = Bidirectional(LSTM(U, return_sequences=True))
    bi(torch.randn(B, T, F), mask=torch.tensor(MASKS["left_padded"], dtype=torch.bool))
    assert bi.forward_layer.last_path == bi.backward_layer.last_path == "fused"


def test_kernel_that_declines_runs_the_loop_and_says_so(reference_kernels):
    # The kernels decide: a NotImplementedError from them is a "no" the layer answers with its loop, and
    # last_path never claims "fused" for it; with use_cudnn=True the reason becomes the error.
    reference_kernels.decline = "no fused LSTM for this dtype"
    layer = LSTM(U)
    x = torch.randn(B, T, F)
    out = layer(x)
    assert layer.last_path == "loop" and layer.last_kernel is None
    want = reference_lstm_sequence(x, layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias,
                                   torch.zeros(B, U), torch.zeros(B, U))[0][:, -1]
    torch.testing.assert_close(out, want)
    with pytest.raises(ConfigError, match="no fused LSTM for this dtype"):
        LSTM(U, use_cudnn=True)(x)
    reference_kernels.decline = None
    layer(x)
    assert layer.last_path == "fused" and layer.last_kernel == "test:reference"


def test_float64_on_cpu_is_declined_by_the_real_kernels():
    layer = LSTM(U, dtype="float64")
    layer(torch.randn(B, T, F, dtype=torch.float64))
    assert layer.last_path == "loop"
