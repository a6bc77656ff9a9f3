"""`LanguageModel`: an AWD-LSTM language model built on the lstmtext layers and their fused LSTM kernel.

Embedding -> LSTM stack -> adaptive softmax, the layout of Merity et al.'s AWD-LSTM and fastai's
``AWD_LSTM`` (``text/models/awdlstm.py``), with its regularisation:

* embedding dropout: whole words are dropped (every occurrence of a dropped id is zero in the batch);
* locked (variational) dropout on the embeddings, between the LSTMs and before the output: one mask per
  sequence, fixed over the time steps;
* DropConnect ("weight dropout") on each LSTM's recurrent kernel, a new mask every batch;
* activation regularisation (AR) and temporal activation regularisation (TAR) on the last LSTM's output.

The last LSTM has ``embedding_dim`` units so the output layer can share the embedding table: with
``tie_weights`` the adaptive softmax's shortlist rows are the embedding rows of the most frequent ids.
The LSTMs are ordinary :class:`lstmtext.layers.LSTM` layers named ``lstm_1 ... lstm_n`` after an
``embedding`` layer, which is what lets a classifier take them over by name (:mod:`lstmtext.lm.finetune`).
Every sequence runs through :func:`lstmtext.kernels.lstm_sequence`, the fused path the layer itself uses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lstmtext.errors import ConfigError
from lstmtext.kernels import LSTMCall, lstm_sequence
from lstmtext.kernels.fused import linear
from lstmtext.kernels.training_ops import dropout, softmax_nll, softmax_nll_grad_
from lstmtext.layers import LSTM, Embedding

State = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LMConfig:
    """Architecture and regularisation of a :class:`LanguageModel`."""

    num_words: int
    """Size of the id space (the tokenizer's ``num_words``); ids are in ``[0, num_words)``."""
    embedding_dim: int = 400
    """Embedding size, also the last LSTM's units (AWD-LSTM: 400)."""
    hidden_units: tuple[int, ...] = (1152, 1152)
    """Units of the LSTMs before the last one (AWD-LSTM: two of 1152)."""
    cutoffs: tuple[int, ...] = (2000, 10000)
    """Adaptive softmax cluster bounds: ids below the first are the shortlist; ids past ``num_words`` dropped."""
    div_value: float = 4.0
    """Each tail cluster projects to ``embedding_dim / div_value**(i + 1)`` features (torch's default 4)."""
    tie_weights: bool = True
    """The shortlist's output vectors are the embedding rows (AWD-LSTM ties all of them)."""
    output_bias: bool = True
    """A bias on the adaptive softmax's head (AWD-LSTM's decoder has one). Without it the unigram
    distribution must come from a constant LSTM output aligned with the (tied) embedding rows: the model
    sits on that plateau for hundreds of steps and its encoder outputs carry nothing about the input."""
    embed_dropout: float = 0.1
    """Fraction of the vocabulary dropped per batch (whole words)."""
    input_dropout: float = 0.25
    """Locked dropout on the embedding outputs."""
    hidden_dropout: float = 0.15
    """Locked dropout between the LSTMs."""
    weight_dropout: float = 0.2
    """DropConnect on each LSTM's recurrent kernel."""
    output_dropout: float = 0.1
    """Locked dropout on the last LSTM's output, before the softmax."""
    backwards: bool = False
    """Read every text right to left: trained on the reversed token stream (ULMFiT's backward model, the
    other half of a forward + backward ensemble); a classifier built from it reverses its inputs."""

    def __post_init__(self) -> None:
        self.hidden_units = tuple(self.hidden_units)
        self.cutoffs = tuple(c for c in self.cutoffs if c < self.num_words) if self.num_words else ()
        for name in ("num_words", "embedding_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"LMConfig.{name} must be a positive integer, got {v!r}")
        if any(not isinstance(u, int) or u <= 0 for u in self.hidden_units):
            raise ConfigError(f"LMConfig.hidden_units must be positive integers, got {self.hidden_units!r}")
        if list(self.cutoffs) != sorted(set(self.cutoffs)) or any(c <= 0 for c in self.cutoffs):
            raise ConfigError(f"LMConfig.cutoffs must be increasing positive integers, got {self.cutoffs!r}")
        if not isinstance(self.backwards, bool):
            raise ConfigError(f"LMConfig.backwards must be true or false, got {self.backwards!r}")
        if self.div_value < 1:
            raise ConfigError(f"LMConfig.div_value must be >= 1, got {self.div_value!r}")
        for f in fields(self):
            if f.name.endswith("_dropout") and not 0.0 <= getattr(self, f.name) < 1.0:
                raise ConfigError(f"LMConfig.{f.name} must be in [0, 1), got {getattr(self, f.name)!r}")

    def reading_order(self, tokens: Any) -> Any:
        """``tokens`` (a 1-D id array or memmap) in the order this model reads them: reversed when
        ``backwards`` (a view: nothing is copied)."""
        return np.asarray(tokens)[::-1] if self.backwards else tokens

    @property
    def layer_units(self) -> list[int]:
        """Units of every LSTM, first to last."""
        return [*self.hidden_units, self.embedding_dim]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``LMConfig(**d)`` rebuilds it)."""
        d = asdict(self)
        d["hidden_units"], d["cutoffs"] = list(self.hidden_units), list(self.cutoffs)
        return d


class _LinearNLL(torch.autograd.Function):
    """``cross_entropy(hidden @ weight.T, target, reduction="none")`` with one ``(N, C)`` buffer in all.

    The logits are kept with one log-sum-exp per row (:func:`lstmtext.kernels.training_ops.softmax_nll`);
    the backward turns the same buffer into ``softmax - one_hot`` (scaled by the incoming gradient) in place
    and multiplies it out. Autograd's composition allocates the logits, the log-probabilities, a zero-filled
    gradient and the log-softmax gradient: four ``(N, C)`` tensors per step (36 MB each for the imdb-cpu
    head), each one above glibc's largest reuse threshold, so each one is fresh pages to fault in and zero.
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        logits = _times_transposed(hidden, weight, bias)
        nll, lse = softmax_nll(logits, target)
        ctx.save_for_backward(hidden, weight, logits, lse, target)
        ctx.has_bias = bias is not None
        return nll

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, logits, lse, target = ctx.saved_tensors
        # In place on the saved buffer: a second backward through this graph fails on the version check.
        g = softmax_nll_grad_(logits, lse, grad.contiguous(), target)
        d_hidden = _times_transposed(g, weight.t()) if ctx.needs_input_grad[0] else None
        # (C, N) @ (N, F): a long reduction into a small output, where MKL's sgemm beats oneDNN's matmul
        # (147 vs 70 GFLOP/s at N 4480, F 200, C 2002; the other two products the other way round).
        d_weight = g.t().matmul(hidden) if ctx.needs_input_grad[1] else None
        d_bias = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return d_hidden, d_weight, None, d_bias


def _times_transposed(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b.T (+ bias)``; on the CPU through oneDNN's matmul (:func:`lstmtext.kernels.fused.linear`).

    On the head's shapes (N 4480, F 200, C 2002; Zen 4, 2 threads) oneDNN gives 110-139 GFLOP/s for the logits
    and 185-190 for the input gradient, against MKL's 60-73 and 144-153 through ``torch.mm``.
    """
    if a.device.type == "cpu" and a.dtype == torch.float32:
        return linear(a, b, bias)
    return a.matmul(b.t()) if bias is None else torch.addmm(bias, a, b.t())


def linear_nll(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row negative log-likelihood of ``target (N,)`` under ``softmax(hidden @ weight.T + bias)``: ``(N,)``.

    The value and gradients of ``F.cross_entropy(F.linear(hidden, weight, bias), target, reduction="none")``,
    computed with one ``(N, C)`` buffer (see :class:`_LinearNLL`).
    """
    if hidden.dtype != weight.dtype or hidden.dim() != 2 or (bias is not None and bias.dtype != weight.dtype):
        return F.cross_entropy(F.linear(hidden, weight, bias), target, reduction="none")
    return _LinearNLL.apply(hidden, weight, target, bias)


def locked_dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Dropout with one mask per sequence for every step: ``x`` is ``(B, T, F)``, the mask ``(B, 1, F)``."""
    if not training or rate <= 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - rate) / (1 - rate)
    return x * mask


class AdaptiveSoftmax(nn.Module):
    """Efficient softmax approximation (Grave et al. 2017), the math of ``torch.nn.AdaptiveLogSoftmaxWithLoss``.

    The head scores the shortlist ids and one entry per tail cluster; a tail cluster's ids are scored
    only for the targets that fall in it, through a projection to ``in_features / div_value**(i + 1)``.
    With ``tied`` the shortlist rows of the head are ``tied[:shortlist]`` (the embedding table).

    Args:
        in_features: size of the hidden vectors.
        n_classes: number of ids.
        cutoffs: increasing cluster bounds below ``n_classes``.
        div_value: the projection shrink factor.
        tied: an embedding table ``(n_classes, in_features)`` to share, or None.
        head_bias: a bias on the head's logits (``AdaptiveLogSoftmaxWithLoss``'s ``head_bias``).
    """

    def __init__(self, in_features: int, n_classes: int, cutoffs: tuple[int, ...], div_value: float = 4.0,
                 tied: nn.Parameter | None = None, head_bias: bool = False) -> None:
        super().__init__()
        self.in_features, self.n_classes = in_features, n_classes
        self.cutoffs = [*cutoffs, n_classes]
        self.shortlist = self.cutoffs[0]
        n_clusters = len(self.cutoffs) - 1
        self.tied = tied is not None
        self._tied_table = [tied] if tied is not None else []  # not a sub-module: the embedding owns it
        bound = 1 / math.sqrt(in_features)
        rows = n_clusters if self.tied else self.shortlist + n_clusters
        self.head = nn.Parameter(torch.empty(rows, in_features).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.zeros(self.shortlist + n_clusters)) if head_bias else None
        self.tails = nn.ModuleList()
        for i in range(n_clusters):
            hsz = max(1, int(in_features // (div_value ** (i + 1))))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tails.append(nn.Sequential(nn.Linear(in_features, hsz, bias=False), nn.Linear(hsz, osz, bias=False)))

    def head_weight(self) -> torch.Tensor:
        """``(shortlist + n_clusters, in_features)``: the shortlist's rows then one row per cluster."""
        if self.tied:
            return torch.cat([self._tied_table[0][: self.shortlist], self.head])
        return self.head

    def forward(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-token negative log-likelihood ``(N,)`` of ``target (N,)`` given ``hidden (N, in_features)``."""
        # The head and each tail: linear layer + log-softmax + gather in one buffer (linear_nll).
        gather = target.clone()
        tail_nll = []
        for i, tail in enumerate(self.tails):
            low, high = self.cutoffs[i], self.cutoffs[i + 1]
            rows = ((target >= low) & (target < high)).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            gather[rows] = self.shortlist + i
            nll = linear_nll(tail[0](hidden.index_select(0, rows)), tail[1].weight, target[rows] - low)
            tail_nll.append((rows, nll))
        out = linear_nll(hidden, self.head_weight(), gather, self.head_bias)  # (N,)
        for rows, nll in tail_nll:
            out = out.index_add(0, rows, nll)
        return out

    def log_prob(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every id ``(N, n_classes)`` (for sampling and tests)."""
        head_logprob = F.log_softmax(F.linear(hidden, self.head_weight(), self.head_bias), dim=1)
        parts = [head_logprob[:, : self.shortlist]]
        for i, tail in enumerate(self.tails):
            parts.append(F.log_softmax(tail(hidden), dim=1) + head_logprob[:, self.shortlist + i, None])
        return torch.cat(parts, dim=1)


@dataclass
class LMOutput:
    """What :meth:`LanguageModel.forward` returns."""

    loss: torch.Tensor
    """Mean negative log-likelihood per predicted token (no regularisation)."""
    penalty: torch.Tensor
    """AR + TAR penalty to add to the loss in training (zero otherwise)."""
    state: State = field(repr=False)
    """The final ``(h, c)`` of every LSTM, detached (the next window's initial state)."""


class LanguageModel(nn.Module):
    """An AWD-LSTM language model (see the module docstring).

    Args:
        config: the :class:`LMConfig`.
        ar_alpha: activation regularisation weight (AWD-LSTM: 2).
        tar_beta: temporal activation regularisation weight (AWD-LSTM: 1).

    Call: ``model(x, y, state=None)`` with int64 ``(B, T)`` ids and targets returns an :class:`LMOutput`.

    >>> lm = LanguageModel(LMConfig(num_words=100, embedding_dim=8, hidden_units=(16,), cutoffs=(20,)))
    >>> out = lm(torch.randint(1, 100, (2, 5)), torch.randint(1, 100, (2, 5)))
    >>> out.loss.shape, len(out.state)
    (torch.Size([]), 2)
    """

    def __init__(self, config: LMConfig, *, ar_alpha: float = 2.0, tar_beta: float = 1.0) -> None:
        super().__init__()
        self.config, self.ar_alpha, self.tar_beta = config, ar_alpha, tar_beta
        c = config
        self.embedding = Embedding(c.num_words, c.embedding_dim, embeddings_initializer={
            "class_name": "RandomUniform", "config": {"minval": -0.1, "maxval": 0.1}}, name="embedding")
        self.embedding.build((None, None))
        self.lstms = nn.ModuleList()
        in_dim = c.embedding_dim
        for i, units in enumerate(c.layer_units):
            layer = LSTM(units, return_sequences=True, return_state=True, name=f"lstm_{i + 1}")
            layer.build((None, None, in_dim))
            self.lstms.append(layer)
            in_dim = units
        self.softmax = AdaptiveSoftmax(c.embedding_dim, c.num_words, c.cutoffs, c.div_value,
                                       tied=self.embedding.embeddings if c.tie_weights else None,
                                       head_bias=c.output_bias)

    # -- the encoder ---------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Zero ``(h, c)`` for every LSTM."""
        dev = device if device is not None else self.embedding.embeddings.device
        return [(torch.zeros(batch_size, u, device=dev), torch.zeros(batch_size, u, device=dev))
                for u in self.config.layer_units]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T, E)`` embeddings, with embedding dropout (whole ids) in training."""
        emb = self.embedding(ids)
        rate = self.config.embed_dropout
        if self.training and rate > 0:
            # One keep-or-drop factor per id (0 or 1 / (1 - rate)), from the compiled counter-based dropout.
            keep = dropout(torch.ones(self.config.num_words, device=emb.device), rate)
            emb = emb * keep[ids].unsqueeze(-1)
        return emb

    def encode(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State, list[torch.Tensor]]:
        """Run the embedding and the LSTMs over ``ids (B, T)`` from ``state`` (zeros when None).

        Returns:
            ``(output (B, T, E), new_state, raw_outputs)``: the last LSTM's output before the output
            dropout, the final states (attached to the graph), and every LSTM's output.
        """
        c, training = self.config, self.training
        if state is None:
            state = self.initial_state(ids.shape[0], ids.device)
        x = locked_dropout(self.embed(ids), c.input_dropout, training)
        new_state, raw = [], []
        for i, (layer, (h0, c0)) in enumerate(zip(self.lstms, state)):
            cell = layer.cell
            rk = cell.recurrent_kernel
            if training and c.weight_dropout > 0:
                # The compiled dropout recomputes its mask in the backward from a seed (no mask tensor);
                # F.dropout draws a Bernoulli tensor, divides and multiplies: several passes per step.
                rk = dropout(rk, c.weight_dropout)
            out, h, cc = lstm_sequence(LSTMCall(x, cell.kernel, rk, cell.bias, h0, c0))
            new_state.append((h, cc))
            raw.append(out)
            x = out if i == len(self.lstms) - 1 else locked_dropout(out, c.hidden_dropout, training)
        return x, new_state, raw

    def forward(self, x: torch.Tensor, y: torch.Tensor, state: State | None = None) -> LMOutput:  # type: ignore[override]
        out, new_state, raw = self.encode(x, state)
        dropped = locked_dropout(out, self.config.output_dropout, self.training)
        nll = self.softmax(dropped.reshape(-1, dropped.shape[-1]), y.reshape(-1))
        loss = nll.mean()
        penalty = loss.new_zeros(())
        if self.training:
            if self.ar_alpha:
                penalty = penalty + self.ar_alpha * dropped.pow(2).mean()
            if self.tar_beta and out.shape[1] > 1:
                penalty = penalty + self.tar_beta * (raw[-1][:, 1:] - raw[-1][:, :-1]).pow(2).mean()
        return LMOutput(loss, penalty, [(h.detach(), c.detach()) for h, c in new_state])

    # -- layers by name (what a classifier takes over) ------------------------------------------------
    def encoder_layers(self) -> list[Any]:
        """The ``embedding`` and ``lstm_1 ... lstm_n`` layers, in order."""
        return [self.embedding, *self.lstms]

    def get_config(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "ar_alpha": self.ar_alpha, "tar_beta": self.tar_beta}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LanguageModel:
        cfg = dict(config)
        ar, tar = cfg.pop("ar_alpha", 2.0), cfg.pop("tar_beta", 1.0)
        cfg.setdefault("output_bias", False)  # written before the field existed: a model without one
        try:
            return cls(LMConfig(**cfg), ar_alpha=ar, tar_beta=tar)
        except TypeError as e:
            raise ConfigError(f"LanguageModel config: {e}") from None
