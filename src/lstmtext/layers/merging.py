"""Merge layers, as ``keras.layers.Add`` / ``Subtract`` / ``Multiply`` / ``Average`` / ``Maximum`` /
``Minimum`` / ``Concatenate`` / ``Dot`` (``keras/src/layers/merging``).

Each is called on a list of tensors, ``layer([a, b], mask=[mask_a, mask_b])``, with masks of shape
``(batch, time)`` (None where an input has none). Keras's rules, copied:

* the output mask is the OR of the input masks, or None as soon as one input has none (``Concatenate``:
  the masks are concatenated along ``axis`` first; ``Dot``: never a mask);
* values ignore masks, except ``Multiply`` (a masked step counts as 1 in the product and the output is 0
  where no input is real) and ``Maximum`` / ``Minimum`` (a masked step takes no part);
* inputs of different ranks are broadcast by inserting axes after the batch axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer, Shape, register_layer

Mask = torch.Tensor | None


def _is_shape_list(input_shape: Any) -> bool:
    return isinstance(input_shape, (list, tuple)) and len(input_shape) > 0 and all(
        isinstance(s, (list, tuple)) for s in input_shape)


class _Merge(Layer):
    """Base of the element-wise merges: shape checks, rank broadcasting, masks (Keras's ``Merge``)."""

    supports_masking = True
    _min_inputs = 1

    # -- shapes ---------------------------------------------------------------------------------
    def _check_shape_list(self, input_shape: Any) -> list[Shape]:
        if not _is_shape_list(input_shape) or len(input_shape) < self._min_inputs:
            raise ConfigError(f"{self.name}: a {type(self).__name__} layer is called on a list of at least "
                              f"{self._min_inputs} tensors, got input shape {input_shape}")
        shapes = [tuple(s) for s in input_shape]
        batch_sizes = {s[0] for s in shapes if s} - {None}
        if len(batch_sizes) > 1:
            raise ConfigError(f"{self.name}: cannot merge tensors with different batch sizes, got shapes {shapes}")
        return shapes

    def _elementwise_shape(self, shape1: Shape, shape2: Shape) -> Shape:
        # Keras's _compute_elemwise_op_output_shape: numpy broadcasting of the trailing axes.
        if len(shape1) < len(shape2):
            return self._elementwise_shape(shape2, shape1)
        if not shape2:
            return shape1
        out = list(shape1[: -len(shape2)])
        for i, j in zip(shape1[-len(shape2):], shape2):
            if i is None or j is None:
                out.append(None)
            elif i == 1:
                out.append(j)
            elif j == 1 or i == j:
                out.append(i)
            else:
                raise ConfigError(f"{self.name}: inputs have incompatible shapes {shape1} and {shape2}")
        return tuple(out)

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = self._check_shape_list(input_shape)
        out = shapes[0][1:]
        for s in shapes[1:]:
            out = self._elementwise_shape(out, s[1:])
        batch_sizes = {s[0] for s in shapes} - {None}
        return (batch_sizes.pop() if len(batch_sizes) == 1 else None, *out)

    def build(self, input_shape: Any) -> None:
        self.compute_output_shape(input_shape)  # shape validation only: merges have no weights
        self.built = True

    # -- calling --------------------------------------------------------------------------------
    def _check_inputs(self, inputs: Any, mask: Any) -> tuple[list[torch.Tensor], list[Mask]]:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < self._min_inputs:
            raise ConfigError(f"{self.name}: a {type(self).__name__} layer is called on a list of at least "
                              f"{self._min_inputs} tensors, got {type(inputs).__name__}")
        if mask is None:
            masks: list[Mask] = [None] * len(inputs)
        elif isinstance(mask, (list, tuple)) and len(mask) == len(inputs):
            masks = [None if m is None else torch.as_tensor(m, device=x.device).bool()
                     for m, x in zip(mask, inputs)]
        else:
            raise ConfigError(f"{self.name}: mask must be a list of {len(inputs)} masks (or None), one per input, "
                              f"got {mask!r}")
        xs = [x.to(self.torch_dtype) if x.is_floating_point() else x for x in inputs]
        self.compute_output_shape([tuple(x.shape) for x in xs])
        return xs, masks

    def call(self, inputs: Any, mask: Any = None, training: bool = False, **kw: Any) -> torch.Tensor:
        xs, masks = self._check_inputs(inputs, mask)
        ranks = [x.dim() for x in xs]
        if len(set(ranks)) > 1:
            # Keras: expand the lower-rank inputs at axis 1 until every rank is the highest; an expanded
            # input is a new tensor there, without its mask.
            top = max(ranks)
            masks = [m if x.dim() == top else None for x, m in zip(xs, masks)]
            xs = [x.reshape(x.shape[:1] + (1,) * (top - x.dim()) + x.shape[1:]) for x in xs]
        return self._merge(xs, masks)

    def _merge(self, xs: list[torch.Tensor], masks: list[Mask]) -> torch.Tensor:
        raise NotImplementedError

    def compute_mask(self, inputs: Any, mask: Any = None) -> Mask:
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or not isinstance(inputs, (list, tuple)) or len(mask) != len(inputs):
            raise ConfigError(f"{self.name}: inputs and mask must be lists of the same length, got "
                              f"{type(inputs).__name__} and {mask!r}")
        if any(m is None for m in mask):
            return None
        out = torch.as_tensor(mask[0]).bool()
        for m in mask[1:]:
            out = out | torch.as_tensor(m, device=out.device).bool()
        return out


def _expand_mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # (B, T) -> the shape of x (B, T, F): Keras's broadcast_to(expand_dims(mask, -1), shape(x)).
    return mask.unsqueeze(-1).expand(x.shape)


@register_layer
class Add(_Merge):
    """Element-wise sum of a list of tensors of the same shape, as ``keras.layers.Add``.

    >>> Add()([torch.ones(2, 3), torch.ones(2, 3)])
    tensor([[2., 2., 2.],
            [2., 2., 2.]])
    """

    def _merge(self, xs: list[torch.Tensor], masks: list[Mask]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@register_layer
class Subtract(_Merge):
    """``inputs[0] - inputs[1]``, as ``keras.layers.Subtract`` (exactly two inputs)."""

    _min_inputs = 2

    def _check_shape_list(self, input_shape: Any) -> list[Shape]:
        shapes = super()._check_shape_list(input_shape)
        if len(shapes) != 2:
            raise ConfigError(f"{self.name}: a Subtract layer is called on exactly 2 tensors, got {len(shapes)}")
        return shapes

    def _merge(self, xs: list[torch.Tensor], masks: list[Mask]) -> torch.Tensor:
        return xs[0] - xs[1]


@register_layer
class Average(_Merge):
    """Element-wise mean of a list of tensors of the same shape, as ``keras.layers.Average``."""

    def _merge(self, xs: list[torch.Tensor], masks: list[Mask]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs)


@register_layer
class Multiply(_Merge):
    """Element-wise product, as ``keras.layers.Multiply``.

    With a mask on every input, masked steps count as 1 in the product and steps masked in all inputs
    output 0 (Keras's rule); with a mask on some inputs only, those inputs' masked steps count as 1.
    """

    def _merge(self, xs: list[torch.Tensor], masks: list[Mask]) -> torch.Tensor:
        all_masked = all(m is not None for m in masks)
        factors: list[torch.Tensor] = []
        out_mask: torch.Tensor | None = None
        for x, m in zip(xs, masks):
            if m is not None:
                m = _expand_mask(m, x)
                x = torch.where(m, x, torch.ones((), dtype=x.dtype, device=x.device))
                if all_masked:
                    out_mask = m if out_mask is None else out_mask | m
            factors.append(x)
        out = factors[0]
        for x in factors[1:]:
            out = out * x
        if out_mask is not None:
            out = torch.where(out_mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
        return out


class _MaskedExtremum(_Merge):
    # Keras's _apply_merge_op_and_or_mask: a masked step of one input takes the other's value.
    _op = staticmethod(torch.maximum)

    def _merge(self, xs: list[torch.Tensor], masks: list[Mask]) -> torch.Tensor:
        out = xs[0]
        out_mask = None if masks[0] is None else _expand_mask(masks[0], out)
        for x, m in zip(xs[1:], masks[1:]):
            m = None if m is None else _expand_mask(m, x)
            if m is not None:
                x = torch.where(m, x, out)
            if out_mask is not None:
                out = torch.where(out_mask, out, x)
            out_mask = out_mask | m if (m is not None and out_mask is not None) else None
            out = self._op(out, x)
        return out


@register_layer
class Maximum(_MaskedExtremum):
    """Element-wise maximum, as ``keras.layers.Maximum``; a masked step takes no part."""

    _op = staticmethod(torch.maximum)


@register_layer
class Minimum(_MaskedExtremum):
    """Element-wise minimum, as ``keras.layers.Minimum``; a masked step takes no part."""

    _op = staticmethod(torch.minimum)


@register_layer
class Concatenate(_Merge):
    """Concatenates a list of tensors along ``axis``, as ``keras.layers.Concatenate``.

    Args:
        axis: the concatenation axis (default -1, the features).

    The output mask concatenates the input masks (an input without one counts as all real) along
    ``axis`` and reduces the feature axis, as Keras: concatenating ``(B, T, F1)`` and ``(B, T, F2)`` gives
    the OR of their ``(B, T)`` masks; concatenating along time (``axis=1``) joins them.

    >>> Concatenate()([torch.ones(2, 5, 3), torch.zeros(2, 5, 4)]).shape
    torch.Size([2, 5, 7])
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ConfigError(f"Concatenate: axis must be an integer, got {axis!r}")
        self.axis = axis

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = self._check_shape_list(input_shape)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= self.axis < rank:
            raise ConfigError(f"{self.name}: Concatenate(axis={self.axis}) needs inputs of one rank with that axis, "
                              f"got shapes {shapes}")
        axis = self.axis % rank
        out: list[int | None] = list(shapes[0])
        for s in shapes[1:]:
            for i, (a, b) in enumerate(zip(out, s)):
                if i == axis:
                    out[i] = None if a is None or b is None else a + b
                elif a is not None and b is not None and a != b:
                    raise ConfigError(f"{self.name}: Concatenate(axis={self.axis}) needs inputs whose shapes match "
                                      f"except on that axis, got shapes {shapes}")
                elif a is None:
                    out[i] = b
        return tuple(out)

    def call(self, inputs: Any, mask: Any = None, training: bool = False, **kw: Any) -> torch.Tensor:
        xs, _ = self._check_inputs(inputs, mask)
        return torch.cat(xs, dim=self.axis)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Mask:
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or not isinstance(inputs, (list, tuple)) or len(mask) != len(inputs):
            raise ConfigError(f"{self.name}: inputs and mask must be lists of the same length, got "
                              f"{type(inputs).__name__} and {mask!r}")
        if all(m is None for m in mask):
            return None
        full = []
        for x, m in zip(inputs, mask):
            if m is None:
                full.append(torch.ones(x.shape, dtype=torch.bool, device=x.device))
            else:
                m = torch.as_tensor(m, device=x.device).bool()
                full.append(_expand_mask(m, x) if m.dim() < x.dim() else m)
        return torch.cat(full, dim=self.axis).any(dim=-1)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


@register_layer
class Dot(_Merge):
    """Batch-wise dot product of two tensors along ``axes``, as ``keras.layers.Dot``.

    Args:
        axes: one axis for both inputs, or ``(axis_of_first, axis_of_second)``; never the batch axis 0.
        normalize: L2-normalize both inputs along their dot axis first (the output is then the cosine
            similarity).

    Returns:
        ``batch_dot``'s shape: the first input's shape without its dot axis, followed by the second's
        without its batch and dot axes; ``(batch, 1)`` when that leaves only the batch axis. No mask.

    >>> Dot(axes=(2, 2))([torch.ones(2, 4, 3), torch.ones(2, 5, 3)]).shape
    torch.Size([2, 4, 5])
    """

    _min_inputs = 2

    def __init__(self, axes: int | Sequence[int], normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
                raise ConfigError(f"Dot: axes must be an integer or a pair of integers, got {axes!r}")
            axes = [int(axes[0]), int(axes[1])]
        elif not isinstance(axes, int) or isinstance(axes, bool):
            raise ConfigError(f"Dot: axes must be an integer or a pair of integers, got {axes!r}")
        self.axes: int | list[int] = axes
        self.normalize = bool(normalize)

    def _axes_for(self, rank1: int, rank2: int) -> list[int]:
        pair = [self.axes, self.axes] if isinstance(self.axes, int) else list(self.axes)
        out = [a % r if a < 0 else a for a, r in zip(pair, (rank1, rank2))]
        if 0 in out or out[0] >= rank1 or out[1] >= rank2:
            raise ConfigError(f"{self.name}: Dot axes {self.axes} are out of range (or the batch axis 0) for "
                              f"inputs of ranks {rank1} and {rank2}")
        return out

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = self._check_shape_list(input_shape)
        if len(shapes) != 2:
            raise ConfigError(f"{self.name}: a Dot layer is called on exactly 2 tensors, got {len(shapes)}")
        s1, s2 = list(shapes[0]), list(shapes[1])
        if len(s1) < 2 or len(s2) < 2:
            raise ConfigError(f"{self.name}: Dot needs inputs of rank >= 2, got shapes {shapes}")
        a1, a2 = self._axes_for(len(s1), len(s2))
        if s1[a1] is not None and s2[a2] is not None and s1[a1] != s2[a2]:
            raise ConfigError(f"{self.name}: Dot axes have different sizes: {s1[a1]} (axis {a1} of {tuple(s1)}) "
                              f"!= {s2[a2]} (axis {a2} of {tuple(s2)})")
        s1.pop(a1)
        s2.pop(a2)
        out = s1 + s2[1:]
        return tuple(out + [1] if len(out) == 1 else out)

    def call(self, inputs: Any, mask: Any = None, training: bool = False, **kw: Any) -> torch.Tensor:
        (x1, x2), _ = self._check_inputs(inputs, mask)
        a1, a2 = self._axes_for(x1.dim(), x2.dim())
        if self.normalize:
            x1, x2 = _l2_normalize(x1, a1), _l2_normalize(x2, a2)
        return _batch_dot(x1, x2, a1, a2)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Mask:
        return None

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(axes=self.axes, normalize=self.normalize)
        return cfg


def _l2_normalize(x: torch.Tensor, axis: int) -> torch.Tensor:
    # Keras's ops.normalize(order=2): x * min(rsqrt(sum(x^2)), 1 / epsilon), epsilon = 1e-7.
    inv = torch.rsqrt(x.square().sum(dim=axis, keepdim=True))
    return x * torch.minimum(inv, torch.tensor(1.0 / 1e-7, dtype=x.dtype, device=x.device))


def _batch_dot(x: torch.Tensor, y: torch.Tensor, ax: int, ay: int) -> torch.Tensor:
    """Keras's ``batch_dot``: contract ``x``'s axis ``ax`` with ``y``'s axis ``ay`` per batch row."""
    xr, yr = x.dim(), y.dim()
    if xr == 2:
        x, ax = x.unsqueeze(1), ax + 1
    if yr == 2:
        y = y.unsqueeze(2)
    x = x.movedim(ax, -1)                     # (B, ..., d)
    y = y.movedim(ay, 1)                      # (B, d, ...)
    mid, trail = x.shape[1:-1], y.shape[2:]
    out = torch.matmul(x.reshape(x.shape[0], -1, x.shape[-1]), y.reshape(y.shape[0], y.shape[1], -1))
    out = out.reshape(out.shape[0], *mid, *trail)
    if xr == 2:
        out = out.squeeze(1)
    elif yr == 2:
        out = out.squeeze(-1)
    return out


def add(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional interface of :class:`Add` (``keras.layers.add``)."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional interface of :class:`Subtract` (``keras.layers.subtract``)."""
    return Subtract(**kwargs)(inputs)


def average(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional interface of :class:`Average` (``keras.layers.average``)."""
    return Average(**kwargs)(inputs)


def multiply(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional interface of :class:`Multiply` (``keras.layers.multiply``)."""
    return Multiply(**kwargs)(inputs)


def maximum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional interface of :class:`Maximum` (``keras.layers.maximum``)."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """Functional interface of :class:`Minimum` (``keras.layers.minimum``)."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: Sequence[Any], axis: int = -1, **kwargs: Any) -> Any:
    """Functional interface of :class:`Concatenate` (``keras.layers.concatenate``)."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: Sequence[Any], axes: int | Sequence[int] = -1, normalize: bool = False, **kwargs: Any) -> Any:
    """Functional interface of :class:`Dot` (``keras.layers.dot``)."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
