"""Seeding that makes a CPU run repeat bit for bit."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_random_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (CPU and every CUDA device).

    Like ``keras.utils.set_random_seed``. A CPU run repeated with the same seed gives identical
    results; on CUDA, cuDNN's non-deterministic algorithms may still differ in the last bits.

    Args:
        seed: a non-negative integer.

    >>> set_random_seed(1)
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative integer, got {seed!r}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
