"""Helpers of the layer tests: which LSTM paths can run here."""

from __future__ import annotations

import pytest
import torch

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
