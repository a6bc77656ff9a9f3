"""Dot-product and additive attention, as ``keras.layers.Attention`` / ``AdditiveAttention``
(``keras/src/layers/attention/attention.py``, ``additive_attention.py``)."""

from __future__ import annotations

from typing import Any

import torch

from lstmtext.errors import ConfigError
from lstmtext.layers import initializers
from lstmtext.layers.base import Layer, Shape, register_layer
from lstmtext.layers.dropout import drop_with_noise_shape, seeded_generator

_SCORE_MODES = ("dot", "concat")
# Keras subtracts this from masked scores (not -inf): a fully masked row then averages all values.
_MASK_OFFSET = {torch.float16: 65504.0}
_DEFAULT_MASK_OFFSET = 1.0e9


@register_layer
class Attention(Layer):
    """Dot-product (Luong-style) attention, as ``keras.layers.Attention``.

    Called on ``[query, value]`` or ``[query, value, key]`` (``key`` defaults to ``value``), of shapes
    ``(batch, Tq, dim)``, ``(batch, Tv, dim)``, ``(batch, Tv, dim)``:

    1. scores ``(batch, Tq, Tv)``: ``query @ key^T`` (``score_mode="dot"``, times ``scale`` with
       ``use_scale``), or ``concat_score_weight * sum(tanh(scale * (q + k)), -1)`` (``"concat"``);
    2. masked scores (``value_mask`` False, or ``j > i`` with ``use_causal_mask``) get ``1e9`` subtracted,
       then a softmax over ``Tv`` (a fully masked row averages every value, as in Keras);
    3. dropout on those weights in training; the output is ``weights @ value``, set to 0 where
       ``query_mask`` is False.

    Args:
        use_scale: learn a scalar ``scale`` (initialized to 1) that multiplies the scores.
        score_mode: ``"dot"`` (default) or ``"concat"`` (adds the scalar weight ``concat_score_weight``).
        dropout: drop rate of the attention weights during training.
        seed: optional seed of the dropout's own generator.

    Call: ``layer([query, value(, key)], mask=[query_mask, value_mask], training=None,
    return_attention_scores=False, use_causal_mask=False)``; masks are ``(batch, T)`` bool, either may be
    None.

    Returns:
        ``(batch, Tq, dim)``, and with ``return_attention_scores`` also the weights ``(batch, Tq, Tv)``
        (after masking, softmax and dropout). The output mask is ``query_mask``.

    >>> q, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    >>> Attention()([q, v]).shape
    torch.Size([2, 4, 8])
    """

    supports_masking = True

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        kind = type(self).__name__
        if score_mode not in _SCORE_MODES:
            raise ConfigError(f"{kind}: score_mode must be one of {list(_SCORE_MODES)}, got {score_mode!r}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{kind}: dropout must be a number in [0, 1), got {dropout!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError(f"{kind}: seed must be an integer or None, got {seed!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.seed = seed
        self._generator: torch.Generator | None = None

    # -- shapes and weights ---------------------------------------------------------------------
    def _check_shapes(self, input_shape: Any) -> list[Shape]:
        kind = type(self).__name__
        if not isinstance(input_shape, (list, tuple)) or not 2 <= len(input_shape) <= 3 or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ConfigError(f"{self.name}: {kind} is called on a list [query, value] or [query, value, key], "
                              f"got input shape {input_shape}")
        shapes = [tuple(s) for s in input_shape]
        if any(len(s) != 3 for s in shapes):
            raise ConfigError(f"{self.name}: {kind} expects query, value and key of rank 3 (batch, steps, dim), "
                              f"got shapes {shapes}")
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) == 3 else v
        if v[1] is not None and k[1] is not None and v[1] != k[1]:
            raise ConfigError(f"{self.name}: value and key need the same number of steps, got shapes {v} and {k}")
        if q[-1] is not None and k[-1] is not None and q[-1] != k[-1]:
            raise ConfigError(f"{self.name}: query and key need the same last axis, got shapes {q} and {k}")
        return shapes

    def build(self, input_shape: Any) -> None:
        self._check_shapes(input_shape)
        if self.use_scale:
            self.add_weight("scale", (), initializers.get("ones"))
        if self.score_mode == "concat":
            self.add_weight("concat_score_weight", (), initializers.get("ones"))
        self.built = True

    def compute_output_shape(self, input_shape: Any, return_attention_scores: bool = False) -> Any:
        """``(batch, Tq, value_dim)``; with ``return_attention_scores`` (the call argument) also the
        scores' ``(batch, Tq, Tv)``, as Keras's ``compute_output_spec``."""
        shapes = self._check_shapes(input_shape)
        out = (*shapes[0][:-1], shapes[1][-1])
        if return_attention_scores:
            key = shapes[2] if len(shapes) == 3 else shapes[1]
            return [out, (*shapes[0][:-1], key[-2])]
        return out

    # -- calling --------------------------------------------------------------------------------
    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        scale = self.scale if self.use_scale else None
        if self.score_mode == "dot":
            scores = torch.matmul(query, key.transpose(-2, -1))          # (B, Tq, Tv)
            return scores * scale if scale is not None else scores
        summed = query.unsqueeze(-2) + key.unsqueeze(-3)                # (B, Tq, Tv, dim)
        if scale is not None:
            summed = scale * summed
        return self.concat_score_weight * torch.tanh(summed).sum(dim=-1)

    def call(self, inputs: Any, mask: Any = None, training: bool = False, return_attention_scores: bool = False,
             use_causal_mask: bool = False, **kw: Any) -> Any:
        if not isinstance(inputs, (list, tuple)):
            raise ConfigError(f"{self.name}: {type(self).__name__} is called on a list [query, value] or "
                              f"[query, value, key], got {type(inputs).__name__}")
        self._check_shapes([tuple(x.shape) for x in inputs])
        if mask is not None and (not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3):
            raise ConfigError(f"{self.name}: mask must be a list [query_mask, value_mask], got {mask!r}")
        q, v = (x.to(self.torch_dtype) for x in inputs[:2])
        k = inputs[2].to(self.torch_dtype) if len(inputs) > 2 else v
        q_mask = _as_mask(mask[0], q) if mask else None
        v_mask = _as_mask(mask[1], v) if mask else None

        scores = self._scores(q, k)
        keep = None if v_mask is None else v_mask.unsqueeze(-2)        # (B, 1, Tv)
        if use_causal_mask:
            tq, tv = scores.shape[-2], scores.shape[-1]
            rows = torch.arange(1, tq + 1, device=scores.device).unsqueeze(-1)
            cols = torch.arange(1, tv + 1, device=scores.device)
            causal = (rows >= cols).unsqueeze(0)                         # (1, Tq, Tv)
            keep = causal if keep is None else keep & causal
        if keep is not None:
            offset = _MASK_OFFSET.get(scores.dtype, _DEFAULT_MASK_OFFSET)
            scores = torch.where(keep, scores, scores - offset)
        weights = torch.softmax(scores, dim=-1)
        if training and self.dropout > 0:
            weights = drop_with_noise_shape(weights, self.dropout, tuple(weights.shape),
                                            seeded_generator(self, weights.device))
        out = torch.matmul(weights, v)                                   # (B, Tq, dim)
        if q_mask is not None:
            out = torch.where(q_mask.unsqueeze(-1), out, torch.zeros((), dtype=out.dtype, device=out.device))
        return (out, weights) if return_attention_scores else out

    def compute_mask(self, inputs: Any, mask: Any = None) -> torch.Tensor | None:
        if mask is None or mask[0] is None:
            return None
        return torch.as_tensor(mask[0]).bool()

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(use_scale=self.use_scale, score_mode=self.score_mode, dropout=self.dropout, seed=self.seed)
        return cfg


def _as_mask(mask: Any, x: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(mask, device=x.device).bool()
    if tuple(m.shape) != tuple(x.shape[:2]):
        raise ConfigError(f"attention mask of shape {tuple(m.shape)} does not match its input of shape "
                          f"{tuple(x.shape)}; expected {tuple(x.shape[:2])}")
    return m


@register_layer
class AdditiveAttention(Attention):
    """Additive (Bahdanau-style) attention, as ``keras.layers.AdditiveAttention``.

    Scores are ``sum(scale * tanh(query + key), -1)`` with a learned ``scale`` of shape ``(dim,)``
    (``glorot_uniform``, as Keras) when ``use_scale`` (the default), else ``sum(tanh(query + key), -1)``;
    masks, softmax, dropout, outputs and call arguments are :class:`Attention`'s.

    Args:
        use_scale: learn the ``(dim,)`` scale (default True).
        dropout: drop rate of the attention weights during training.
        seed: optional seed of the dropout's own generator.

    >>> q, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    >>> AdditiveAttention()([q, v]).shape
    torch.Size([2, 4, 8])
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, **kwargs: Any) -> None:
        kwargs.pop("score_mode", None)  # not an argument of AdditiveAttention (Keras drops it from the config)
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape: Any) -> None:
        shapes = self._check_shapes(input_shape)
        dim = shapes[0][-1]
        if dim is None:
            raise ConfigError(f"{self.name}: the query's last axis must be known, got shape {shapes[0]}")
        if self.use_scale:
            self.add_weight("scale", (dim,), initializers.get("glorot_uniform"))
        self.built = True

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))         # (B, Tq, Tv, dim)
        return (self.scale * t).sum(dim=-1) if self.use_scale else t.sum(dim=-1)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        del cfg["score_mode"]
        return cfg
