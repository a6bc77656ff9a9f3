"""Helpers of the layer tests: the layer-test harness (like Keras's ``run_layer_test``) and which LSTM
paths can run here."""

from __future__ import annotations

import json

import pytest
import torch

from lstmtext.layers import Layer, deserialize, serialize
from lstmtext.layers.base import shapes_of
from lstmtext.layers.lstm_ops import fused_kernels


def fused_available(device: str = "cpu") -> bool:
    kernels, _ = fused_kernels()
    return kernels is not None and bool(kernels.fused_available(torch.device(device)))


def path_kwargs(path: str, device: str = "cpu") -> dict:
    """LSTM kwargs forcing one implementation: the cell loop, or the fused path (skips when absent)."""
    if path == "loop":
        return {"use_cudnn": False}
    if not fused_available(device):
        pytest.skip(f"lstmtext.kernels (the fused LSTM) is not available on {device} here")
    return {"use_cudnn": True}


def _flat(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _flat_shapes(shape):
    return shape if isinstance(shape, list) else [shape]


def _to(value, device):
    # One tensor, or a list of tensors (merge layers, Attention); None entries stay None.
    if isinstance(value, (list, tuple)):
        return [_to(v, device) for v in value]
    return value.to(device) if value is not None else None


def run_layer_test(make, x, expected_shape, expected_params=None, mask=None, device="cpu"):
    """Shape, Keras's parameter count, config and weights round trip through JSON, one training step.

    ``x`` and ``mask`` are one tensor, or lists of tensors for layers called on several inputs.
    """
    torch.manual_seed(0)
    layer: Layer = make()
    x = _to(x, device)
    mask = _to(mask, device)
    kwargs = {"mask": mask} if mask is not None else {}
    out = layer(x, training=False, **kwargs)
    shapes = [tuple(o.shape) for o in _flat(out)]
    assert shapes == [tuple(s) for s in _flat_shapes(expected_shape)]
    assert [tuple(s) for s in _flat_shapes(layer.compute_output_shape(shapes_of(x)))] == shapes
    if expected_params is not None:
        assert layer.count_params() == expected_params
    assert all(p.device.type == torch.device(device).type for p in layer.parameters())

    # Config and weights round trip through JSON: the clone computes the same outputs.
    spec = json.loads(json.dumps(serialize(layer)))
    clone = deserialize(spec)
    assert clone.get_config() == layer.get_config()
    clone(x, training=False, **kwargs)
    clone.set_weights(layer.get_weights())
    if getattr(layer, "stateful", False):
        layer.reset_states()
        clone.reset_states()
    out = layer(x, training=False, **kwargs)
    for a, b in zip(_flat(clone(x, training=False, **kwargs)), _flat(out)):
        torch.testing.assert_close(a, b, equal_nan=True)  # an all-padded row averages to NaN, as in Keras

    # One training step: every trainable weight gets a finite gradient, moves, and stays constrained.
    params = [p for p in layer.parameters() if p.requires_grad]
    if not params:
        return layer
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=0.1)
    outs = [o for o in _flat(layer(x, training=True, **kwargs)) if o.is_floating_point()]
    loss = sum(o.square().mean() for o in outs) + sum(layer.losses, torch.zeros((), device=device))
    loss.backward()
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    opt.step()
    layer.apply_constraints()
    assert any(not torch.equal(p, b) for p, b in zip(params, before))
    return layer
