"""In-memory datasets for ``fit``/``evaluate``/``predict``: validated once, converted to tensors once.

The whole array goes to the device a single time; each step gathers its rows with an index (a
permutation slice when shuffling, a plain slice otherwise), so the loop does no per-step host work.
Shuffling uses a dedicated generator seeded from ``(seed, epoch)``, never the global one, so the
order of any epoch can be recomputed when resuming.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lstmtext.errors import ConfigError, DataError


def as_array(value: Any, arg: str) -> np.ndarray:
    """``value`` as a numeric NumPy array; a clear :class:`DataError` naming ``arg`` otherwise."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise DataError(
            f"{arg}: sequences of different lengths cannot form one array; pad them first, e.g. "
            f"pad_sequences({arg}, maxlen=300)"
        ) from e
    if arr.dtype == object:
        raise DataError(
            f"{arg}: got an object array (sequences of different lengths?); pad them first, e.g. "
            f"pad_sequences({arg}, maxlen=300)"
        )
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{arg}: expected numbers, got an array of dtype {arr.dtype}")
    if arr.ndim == 0:
        raise DataError(f"{arg}: expected an array with one row per sample, got a scalar")
    return arr


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """Integer arrays become int64 (token ids), everything else float32."""
    if arr.dtype.kind in "iu":
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.int64))
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def class_weight_to_sample_weight(y: np.ndarray, class_weight: Mapping[int, float]) -> np.ndarray:
    """Keras's rule: the class of a sample is its (rounded) label, or the arg-max of a one-hot row."""
    if not isinstance(class_weight, Mapping):
        raise ConfigError(f"class_weight: expected a dict {{class: weight}}, got {type(class_weight).__name__}")
    labels = y
    if labels.ndim > 1:
        labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels.squeeze(-1)
    labels = np.round(labels).astype(np.int64).reshape(-1)
    out = np.ones(labels.shape[0], dtype=np.float32)
    for cls, w in class_weight.items():
        out[labels == int(cls)] = float(w)
    return out


@dataclass
class ArrayData:
    """Inputs, targets and sample weights of one dataset, as tensors with the same first axis."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    sample_weight: torch.Tensor | None = None
    y_array: np.ndarray | None = None  # kept on the host for target checks

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device) -> ArrayData:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)
        return ArrayData(move(self.x), move(self.y), move(self.sample_weight), self.y_array)  # type: ignore[arg-type]

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def batches(self, batch_size: int, order: torch.Tensor | None = None, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
        """Yield ``(x, y, sample_weight)`` for batches ``start .. stop-1`` (in ``order`` if given)."""
        stop = self.num_batches(batch_size) if stop is None else stop
        for b in range(start, stop):
            lo, hi = b * batch_size, min((b + 1) * batch_size, len(self))
            if order is None:
                yield self.x[lo:hi], _slice(self.y, lo, hi), _slice(self.sample_weight, lo, hi)
            else:
                idx = order[lo:hi]
                yield self.x[idx], _take(self.y, idx), _take(self.sample_weight, idx)


def _slice(t: torch.Tensor | None, lo: int, hi: int) -> torch.Tensor | None:
    return None if t is None else t[lo:hi]


def _take(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t[idx]


def make_data(x: Any, y: Any = None, sample_weight: Any = None, class_weight: Mapping[int, float] | None = None,
              prefix: str = "") -> ArrayData:
    """Validate and convert arrays; ``prefix`` names them in errors (``"validation_data"``)."""
    if x is None:
        raise DataError(f"{prefix or 'x'}: no input data given")
    name_x, name_y = (f"{prefix}[0]", f"{prefix}[1]") if prefix else ("x", "y")
    if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (np.ndarray, torch.Tensor)):
        x = x[0]  # a one-input list, as Keras accepts
    xa = as_array(x, name_x)
    ya = None
    if y is not None:
        ya = as_array(y, name_y)
        if ya.shape[0] != xa.shape[0]:
            raise DataError(
                f"{name_x} and {name_y} must have the same number of samples, got {xa.shape[0]} inputs and "
                f"{ya.shape[0]} targets"
            )
    if class_weight is not None and sample_weight is not None:
        raise ConfigError("fit: pass class_weight or sample_weight, not both")
    sw = None
    if sample_weight is not None:
        sw = as_array(sample_weight, f"{prefix}[2]" if prefix else "sample_weight").astype(np.float32)
        if sw.shape[0] != xa.shape[0]:
            raise DataError(
                f"sample_weight must have one weight per sample ({xa.shape[0]}), got shape {sw.shape}"
            )
    elif class_weight is not None:
        if ya is None:
            raise ConfigError("class_weight: needs targets y")
        sw = class_weight_to_sample_weight(ya, class_weight)
    return ArrayData(
        to_tensor(xa),
        None if ya is None else torch.from_numpy(np.ascontiguousarray(ya, dtype=np.float32)),
        None if sw is None else torch.from_numpy(np.ascontiguousarray(sw)),
        ya,
    )


def split_validation(data: ArrayData, validation_split: float) -> tuple[ArrayData, ArrayData]:
    """Keras's split: the *last* ``validation_split`` fraction (before any shuffling) is held out."""
    if not isinstance(validation_split, (int, float)) or not 0.0 < validation_split < 1.0:
        raise ConfigError(f"validation_split must be a number in (0, 1), got {validation_split!r}")
    n = len(data)
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise DataError(
            f"validation_split={validation_split} leaves no samples for training or validation out of {n}"
        )

    def part(lo: int, hi: int) -> ArrayData:
        return ArrayData(data.x[lo:hi], _slice(data.y, lo, hi), _slice(data.sample_weight, lo, hi),
                         None if data.y_array is None else data.y_array[lo:hi])
    return part(0, split_at), part(split_at, n)


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The sample order of ``epoch``: a function of ``(seed, epoch)`` only (resumable, rank-independent)."""
    g = torch.Generator(device="cpu")
    g.manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(n, generator=g)


def unpack_validation_data(validation_data: Any) -> ArrayData:
    """``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ConfigError(
            "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val), got "
            f"{type(validation_data).__name__}" + (f" of length {len(validation_data)}"
                                                   if isinstance(validation_data, (tuple, list)) else "")
        )
    sw = validation_data[2] if len(validation_data) == 3 else None
    return make_data(validation_data[0], validation_data[1], sw, prefix="validation_data")
