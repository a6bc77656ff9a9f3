"""Keras's LSTM on PyTorch: ``LSTMCell`` (the reference step) and ``LSTM`` (the sequence layer).

``LSTM`` takes every argument of ``keras.layers.LSTM`` and gives Keras's numbers; see its docstring for
when it runs the fused kernel (:mod:`lstmtext.kernels`) instead of the cell loop.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lstmtext.errors import ConfigError
from lstmtext.layers import activations, initializers
from lstmtext.layers.base import Layer, Shape, register_layer
from lstmtext.layers.lstm_ops import (
    LSTMCall,
    draw_dropout_masks,
    fused_kernels,
    lstm_cell_loop,
    lstm_fused,
    project_inputs,
)
from lstmtext.layers.weight_options import resolve_constraint, resolve_regularizer, serialize_option

_TANH = (torch.tanh, F.tanh)
_SIGMOID = (torch.sigmoid, F.sigmoid)


def _rate(layer: str, name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{layer}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


@register_layer
class LSTMCell(Layer):
    """One LSTM step, as ``keras.layers.LSTMCell``: the readable reference the sequence layer must match.

    Weights (Keras names and shapes, gate order i, f, c, o): ``kernel (input_dim, 4u)``,
    ``recurrent_kernel (u, 4u)``, ``bias (4u,)``. A step computes
    ``z = x @ kernel + h @ recurrent_kernel + bias``; ``i, f, o = recurrent_activation(z_i, z_f, z_o)``;
    ``c' = f * c + i * activation(z_c)``; ``h' = o * activation(c')``.

    Args:
        units: positive integer, the state size ``u``.
        activation: cell/output activation (default ``"tanh"``; None means linear).
        recurrent_activation: gate activation (default ``"sigmoid"``).
        use_bias: whether to add ``bias``.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras initializers
            (defaults ``"glorot_uniform"``, ``"orthogonal"``, ``"zeros"``).
        unit_forget_bias: initialize the forget-gate bias to 1 (the other gates use ``bias_initializer``).
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional weight penalties.
        kernel_constraint, recurrent_constraint, bias_constraint: optional weight constraints.
        dropout: fraction of the inputs to drop, in ``[0, 1)``.
        recurrent_dropout: fraction of ``h_{t-1}`` to drop, in ``[0, 1)``.
        seed: seed of the dropout masks (reproducible runs); the global generator when None.
        implementation: Keras's 1 (one dropout mask per gate) or 2 (one shared mask). As in Keras 3,
            ``recurrent_dropout > 0`` forces 1.

    Call: ``cell(inputs (B, input_dim), states=[h (B, u), c (B, u)], training=None)`` returns
    ``(h', [h', c'])``. Dropout masks are cached until :meth:`reset_dropout_mask`, as Keras's.

    >>> cell = LSTMCell(4)
    >>> h, (h2, c2) = cell(torch.ones(2, 3), [torch.zeros(2, 4), torch.zeros(2, 4)])
    >>> h.shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        implementation: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ConfigError(f"{cls}: units must be a positive integer, got {units!r}")
        if implementation not in (1, 2):
            raise ConfigError(f"{cls}: implementation must be 1 or 2, got {implementation!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError(f"{cls}: seed must be an integer or None, got {seed!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = resolve_regularizer(kernel_regularizer)
        self.recurrent_regularizer = resolve_regularizer(recurrent_regularizer)
        self.bias_regularizer = resolve_regularizer(bias_regularizer)
        self.kernel_constraint = resolve_constraint(kernel_constraint)
        self.recurrent_constraint = resolve_constraint(recurrent_constraint)
        self.bias_constraint = resolve_constraint(bias_constraint)
        self.dropout = _rate(cls, "dropout", dropout)
        self.recurrent_dropout = _rate(cls, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        # Keras 3 (LSTMCell.__init__): recurrent dropout switches to implementation 1, one mask per gate.
        self.implementation = 1 if self.recurrent_dropout > 0 else implementation
        self.state_size = [units, units]
        self.output_size = units
        self._generators: dict[str, torch.Generator] = {}
        self._dropout_mask: torch.Tensor | None = None
        self._recurrent_dropout_mask: torch.Tensor | None = None

    @property
    def dropout_mask_count(self) -> int:
        """How many masks each dropout draws: 4 (one per gate) for implementation 1, else 1."""
        return 4 if self.implementation == 1 else 1

    def build(self, input_shape: Shape) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ConfigError(f"{self.name}: the feature axis of the input must be known, got shape {input_shape}")
        u = self.units
        self.add_weight("kernel", (input_dim, 4 * u), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.add_weight("recurrent_kernel", (u, 4 * u), self.recurrent_initializer,
                        regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint)
        if self.use_bias:
            init = self.bias_initializer
            if self.unit_forget_bias:
                def init(shape: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
                    b = self.bias_initializer
                    return torch.cat([b((u,), dtype=dtype), torch.ones(u, dtype=dtype), b((2 * u,), dtype=dtype)])
            self.add_weight("bias", (4 * u,), init,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        else:
            self.bias = None
        self.built = True

    # -- dropout masks (Keras's DropoutRNNCell: drawn once, reused for every step until reset) ----
    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed)
            self._generators[key] = g
        return self._generators[key]

    def get_dropout_mask(self, step_input: torch.Tensor) -> torch.Tensor | None:
        """Input dropout masks ``(count, B, input_dim)``, drawn on first use, or None without dropout."""
        if self._dropout_mask is None and self.dropout > 0:
            self._dropout_mask = draw_dropout_masks(tuple(step_input.shape), self.dropout, self.dropout_mask_count,
                                                    step_input, self._generator(step_input.device))
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, h: torch.Tensor) -> torch.Tensor | None:
        """Recurrent dropout masks ``(4, B, u)``, drawn on first use, or None without recurrent dropout."""
        if self._recurrent_dropout_mask is None and self.recurrent_dropout > 0:
            self._recurrent_dropout_mask = draw_dropout_masks(tuple(h.shape), self.recurrent_dropout,
                                                              self.dropout_mask_count, h, self._generator(h.device))
        return self._recurrent_dropout_mask

    def reset_dropout_mask(self) -> None:
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self) -> None:
        self._recurrent_dropout_mask = None

    # -- calling -------------------------------------------------------------------------------
    def get_initial_state(self, batch_size: int, device: torch.device | None = None) -> list[torch.Tensor]:
        return [torch.zeros(batch_size, self.units, dtype=self.torch_dtype, device=device) for _ in range(2)]

    def forward(  # type: ignore[override]
        self, inputs: Any, states: Any = None, training: bool | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        inputs = torch.as_tensor(inputs).to(self.torch_dtype)
        if inputs.ndim != 2:
            raise ConfigError(f"{self.name}: expected inputs of shape (batch, features), got {tuple(inputs.shape)}")
        if not self.built:
            self._build_for(inputs)
        if states is None:
            states = self.get_initial_state(inputs.shape[0], inputs.device)
        if not isinstance(states, (list, tuple)) or len(states) != 2:
            raise ConfigError(f"{self.name}: states must be a list [h, c], got {type(states).__name__}")
        h, c = (torch.as_tensor(s, dtype=inputs.dtype, device=inputs.device) for s in states)
        return self.call(inputs, [h, c], training=self.training if training is None else training)

    def call(self, inputs: torch.Tensor, states: list[torch.Tensor], training: bool = False, **kw: Any):  # type: ignore[override]
        h_tm1, c_tm1 = states
        dp = self.get_dropout_mask(inputs) if training else None
        rdp = self.get_recurrent_dropout_mask(h_tm1) if training else None
        z = project_inputs(inputs.unsqueeze(1), self.kernel, self.bias, dp)[:, 0]  # (B, 4u)
        k_rec = self.recurrent_kernel.chunk(4, dim=1)
        h_in = [h_tm1 * rdp[g] for g in range(4)] if rdp is not None else [h_tm1] * 4
        zi, zf, zc, zo = (zg + h_g @ k_g for zg, h_g, k_g in zip(z.chunk(4, dim=1), h_in, k_rec))
        i, f, o = self.recurrent_activation(zi), self.recurrent_activation(zf), self.recurrent_activation(zo)
        c = f * c_tm1 + i * self.activation(zc)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(
            units=self.units,
            activation=activations.serialize(self.activation),
            recurrent_activation=activations.serialize(self.recurrent_activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            recurrent_initializer=initializers.serialize(self.recurrent_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            unit_forget_bias=self.unit_forget_bias,
            kernel_regularizer=serialize_option(self.kernel_regularizer),
            recurrent_regularizer=serialize_option(self.recurrent_regularizer),
            bias_regularizer=serialize_option(self.bias_regularizer),
            kernel_constraint=serialize_option(self.kernel_constraint),
            recurrent_constraint=serialize_option(self.recurrent_constraint),
            bias_constraint=serialize_option(self.bias_constraint),
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            seed=self.seed,
            # Keras does not save it, but implementation 1 changes how input dropout is drawn.
            implementation=self.implementation,
        )
        return cfg


@register_layer
class LSTM(Layer):
    """Long Short-Term Memory layer, as ``keras.layers.LSTM``: same arguments, weights and numbers.

    Runs :class:`LSTMCell` over the time axis with Keras's rules: with a mask (``(B, T)`` bool, True for a
    real step, e.g. from ``Embedding(mask_zero=True)`` or :class:`Masking`) a masked step carries the state
    ``(h, c)`` unchanged and outputs the previous output (zeros before the first real step), or zeros with
    ``zero_output_for_mask=True``; the mask flows on only with ``return_sequences``.

    **Fast path.** The layer asks the fused implementation ``lstmtext.kernels.lstm_sequence_fused``, passing
    one :class:`~lstmtext.kernels.args.LSTMCall` (a compiled CPU kernel or cuDNN; the kernel module decides
    which, and declines with ``NotImplementedError`` where none serves the call, e.g. float64) when all of
    these hold, else it runs the cell loop
    (:func:`~lstmtext.layers.lstm_ops.lstm_cell_loop`), which gives the same numbers:

    1. ``use_cudnn`` is ``"auto"`` or True (False forces the cell loop);
    2. ``activation`` is tanh and ``recurrent_activation`` is sigmoid;
    3. ``unroll`` is False;
    4. ``lstmtext.kernels`` imports and ``fused_available(device)`` is True for the input's device;
    5. not training with ``recurrent_dropout > 0``, unless the kernel module takes Keras's per-gate
       recurrent masks (it says so with ``SUPPORTS_GATE_DROPOUT_MASKS``; lstmtext's own kernels do).

    Unlike Keras, masks (left- or right-padded, gaps, fully masked rows), ``go_backwards``, ``time_major``,
    ``stateful``, ``initial_state``, ``use_bias=False`` and input ``dropout`` all stay on the fast path.
    ``use_cudnn=True`` raises a :class:`~lstmtext.errors.ConfigError` saying which condition fails;
    :meth:`fused_impediment` gives that reason (None when the fast path applies), ``last_path`` says
    which implementation the last call ran (``"fused"`` or ``"loop"``) and ``last_kernel`` the fused path
    the kernels named (``"cpu:vector"``, ``"cpu:gemm"``, ``"cudnn"``, ...).

    **Dropout** is Keras 3's variational dropout: masks are drawn once per call (per batch) and reused at
    every step, only in training. Without recurrent dropout one input mask serves all gates; with
    ``recurrent_dropout > 0`` Keras 3 switches to implementation 1 and draws four input masks and four
    recurrent masks, one per gate (i, f, c, o), and so does this layer.

    Args:
        units: positive integer, the output/state size ``u``.
        activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
            bias_initializer, unit_forget_bias, kernel_regularizer, recurrent_regularizer,
            bias_regularizer, kernel_constraint, recurrent_constraint, bias_constraint, dropout,
            recurrent_dropout, seed: as :class:`LSTMCell` (Keras names, objects or callables).
        activity_regularizer: optional penalty on the layer's outputs (divided by the batch size).
        return_sequences: return the output of every step ``(B, T, u)`` instead of the last ``(B, u)``.
        return_state: also return the final states: ``[output, h (B, u), c (B, u)]``.
        go_backwards: process the sequence backwards and return the reversed sequence (as Keras).
        stateful: the final states of a batch are the initial states of the next (same batch size
            every call; :meth:`reset_states` zeroes them).
        time_major: inputs are ``(T, B, F)`` (and masks ``(T, B)``, sequence outputs ``(T, B, u)``).
        unroll: accepted for Keras compatibility; always runs the cell loop (needs a known length).
        use_cudnn: ``"auto"``, True or False (see the fast path above).
        zero_output_for_mask: masked steps output zeros (Keras's RNN argument; Bidirectional sets it).

    Call: ``lstm(inputs, mask=None, training=None, initial_state=None)``; ``initial_state`` is ``[h0, c0]``,
    each ``(B, u)``.

    Returns:
        ``(B, u)``, or ``(B, T, u)`` with ``return_sequences``; with ``return_state`` a list
        ``[output, h, c]``.

    >>> lstm = LSTM(10)
    >>> lstm(torch.randn(4, 300, 15)).shape
    torch.Size([4, 10])
    >>> lstm.count_params()  # 4 * (u * (input_dim + u) + u)
    1040
    """

    supports_masking = True

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        time_major: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        use_cudnn: bool | str = "auto",
        zero_output_for_mask: bool = False,
        implementation: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cell = LSTMCell(
            units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, implementation=implementation, name="lstm_cell",
            trainable=self.trainable, dtype=self.dtype_name,
        )
        self.activity_regularizer = resolve_regularizer(activity_regularizer)
        if use_cudnn not in ("auto", True, False):
            raise ConfigError(f"{self.name}: use_cudnn must be 'auto', True or False, got {use_cudnn!r}")
        self.use_cudnn = use_cudnn
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.time_major = bool(time_major)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.register_buffer("_state_h", None, persistent=False)
        self.register_buffer("_state_c", None, persistent=False)
        self.last_path: str | None = None  # "fused" or "loop": which implementation the last call ran
        self.last_kernel: str | None = None  # the fused path the kernels named (e.g. "cpu:vector"), or None
        if use_cudnn is True and (why := self._static_fused_impediment()) is not None:
            raise ConfigError(f"{self.name}: use_cudnn=True but the fused path is impossible: {why}")

    # -- Keras-style attribute access --------------------------------------------------------------
    units = property(lambda self: self.cell.units)
    activation = property(lambda self: self.cell.activation)
    recurrent_activation = property(lambda self: self.cell.recurrent_activation)
    use_bias = property(lambda self: self.cell.use_bias)
    dropout = property(lambda self: self.cell.dropout)
    recurrent_dropout = property(lambda self: self.cell.recurrent_dropout)
    seed = property(lambda self: self.cell.seed)

    @property
    def states(self) -> list[torch.Tensor] | None:
        """The carried ``[h, c]`` of a stateful layer (None before its first call)."""
        return None if self._state_h is None else [self._state_h, self._state_c]

    # -- building ----------------------------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        if len(input_shape) != 3:
            raise ConfigError(
                f"{self.name}: expected a 3-D input ({'timesteps, batch' if self.time_major else 'batch, timesteps'}"
                f", features), got shape {tuple(input_shape)}"
            )
        batch, steps = (input_shape[1], input_shape[0]) if self.time_major else (input_shape[0], input_shape[1])
        if self.unroll and steps is None:
            raise ConfigError(f"{self.name}: unroll=True needs a known number of timesteps, got shape "
                              f"{tuple(input_shape)}; give the input a fixed length or use unroll=False")
        if not self.cell.built:
            self.cell.build((batch, input_shape[-1]))
        if self.stateful and batch is not None and self._state_h is None:
            self._state_h, self._state_c = self.cell.get_initial_state(batch)
        self.built = True

    def reset_states(self, states: list[Any] | None = None) -> None:
        """Zero the states of a stateful layer, or set them to ``states`` (``[h, c]``, each ``(B, u)``)."""
        if not self.stateful:
            raise ConfigError(f"{self.name}: reset_states() needs a stateful layer (stateful=True)")
        if self._state_h is None:
            return
        if states is None:
            self._state_h = torch.zeros_like(self._state_h)
            self._state_c = torch.zeros_like(self._state_c)
            return
        batch = self._state_h.shape[0]
        if not isinstance(states, (list, tuple)) or len(states) != 2:
            raise ConfigError(f"{self.name}: reset_states expects [h, c], got {type(states).__name__}")
        self._state_h = _as_state(states[0], "h", self.name, batch, self.units, self._state_h)
        self._state_c = _as_state(states[1], "c", self.name, batch, self.units, self._state_c)

    reset_state = reset_states

    # -- the fast-path predicate -------------------------------------------------------------------
    def _static_fused_impediment(self) -> str | None:
        if self.use_cudnn is False:
            return "use_cudnn=False"
        if self.cell.activation not in _TANH:
            return f"activation is {activations.serialize_or_repr(self.cell.activation)}, not tanh"
        if self.cell.recurrent_activation not in _SIGMOID:
            return (f"recurrent_activation is {activations.serialize_or_repr(self.cell.recurrent_activation)}"
                    ", not sigmoid")
        if self.unroll:
            return "unroll=True runs the cell loop"
        return None

    def fused_impediment(self, device: torch.device | str, training: bool = False) -> str | None:
        """Why a call on ``device`` would run the cell loop instead of the fused path, or None if it would not."""
        why = self._static_fused_impediment()
        if why is not None:
            return why
        kernels, why = fused_kernels()
        if kernels is None:
            return why
        if not kernels.fused_available(torch.device(device)):
            return f"lstmtext.kernels has no fused LSTM for device {device}"
        if training and self.cell.recurrent_dropout > 0 and not getattr(kernels, "SUPPORTS_GATE_DROPOUT_MASKS", False):
            return "recurrent_dropout needs one mask per gate (as Keras 3), which lstmtext.kernels does not take"
        return None

    # -- calling -----------------------------------------------------------------------------------
    def accepts_embedding(self, embedding: Layer, training: bool) -> bool:
        """Whether :meth:`call_embedding` can stand for ``self(embedding(ids))`` (a Sequential fast path).

        It can when the LSTM would take the fused path, has no input dropout in training, is batch-major,
        and neither layer has an activity regularizer; the embedding's table is then multiplied by the
        kernel once per vocabulary row (``lstmtext.kernels.embedding_lstm``) instead of once per token.
        """
        if not (self.built and embedding.built) or self.time_major or self.activity_regularizer is not None:
            return False
        if embedding.activity_regularizer is not None or (training and self.cell.dropout > 0):
            return False
        table = embedding.embeddings
        if table.dtype != self.cell.torch_dtype or table.shape[1] != self.cell.kernel.shape[0]:
            return False
        kernels, _ = fused_kernels()
        return (kernels is not None
                and self.fused_impediment(table.device, training=bool(training)) is None)

    def call_embedding(self, embedding: Layer, ids: torch.Tensor, mask: torch.Tensor | None = None,
                       training: bool = False) -> Any:
        """``self(embedding(ids), mask=mask)`` with the input projection on the vocabulary; only where
        :meth:`accepts_embedding` holds."""
        if ids.is_floating_point():
            ids = ids.long()
        return self.call(ids, mask=mask, training=training, _embedding=embedding)

    def call(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, training: bool = False,
             initial_state: Any = None, _embedding: Layer | None = None, **kw: Any):
        if kw:
            raise ConfigError(f"{self.name}: unexpected call arguments {sorted(kw)}")
        output, h, c = self._run(inputs, mask, training, initial_state, _embedding)
        return [output, h, c] if self.return_state else output

    def call_with_state(self, inputs: torch.Tensor, initial_state: Any, mask: torch.Tensor | None = None,
                        embedding: Layer | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Inference from ``initial_state``: ``(output, [h, c])`` whatever ``return_state`` says.

        ``output`` is what the layer returns (the sequence or the last output). With ``embedding`` (where
        :meth:`accepts_embedding` holds), ``inputs`` are token ids, as in :meth:`call_embedding`. Lets a
        caller continue a sequence from the states another call ended in.
        """
        if embedding is not None and inputs.is_floating_point():
            inputs = inputs.long()
        output, h, c = self._run(inputs, mask, False, initial_state, embedding)
        return output, [h, c]

    def _run(self, inputs: torch.Tensor, mask: torch.Tensor | None, training: bool, initial_state: Any,
             _embedding: Layer | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if _embedding is not None:
            # inputs are token ids; a stand-in of the embedded input's shape serves the checks below.
            ids, table = inputs, _embedding.embeddings
            inputs = x = table.new_zeros(()).expand(*ids.shape, table.shape[1])
        else:
            x = inputs.to(self.cell.torch_dtype)  # Keras casts inputs to the layer's dtype (numpy gives float64)
        if x.ndim != 3:
            raise ConfigError(f"{self.name}: expected a 3-D input, got shape {tuple(x.shape)}")
        if self.time_major:
            x = x.transpose(0, 1)
        batch, steps, features = x.shape
        if features != self.cell.kernel.shape[0]:
            raise ConfigError(f"{self.name}: expected inputs with {self.cell.kernel.shape[0]} features (the layer "
                              f"was built for them), got shape {tuple(inputs.shape)}")
        if steps == 0:
            raise ConfigError(f"{self.name}: expected at least one timestep, got shape {tuple(inputs.shape)}")
        mask = self._check_mask(mask, inputs, x)
        h0, c0 = self._initial_state(initial_state, x)

        dp = rdp = None
        if training and self.cell.dropout > 0:
            dp = self.cell.get_dropout_mask(x[:, 0])
        if training and self.cell.recurrent_dropout > 0:
            rdp = self.cell.get_recurrent_dropout_mask(h0)
        # Keras draws masks once per call and clears them afterwards (next batch, new masks).
        self.cell.reset_dropout_mask()
        self.cell.reset_recurrent_dropout_mask()

        if self.go_backwards:
            x = x.flip(1)
            mask = mask.flip(1) if mask is not None else None
            if _embedding is not None:
                ids = ids.flip(1)
        why = self.fused_impediment(x.device, training=bool(training))
        cell = self.cell
        # With an embedding the kernels take its table and the token ids (the input projection on the vocabulary).
        source, token_ids = (table, ids) if _embedding is not None else (x, None)
        call = LSTMCall(source, cell.kernel, cell.recurrent_kernel, cell.bias, h0, c0, mask=mask,
                        recurrent_dropout_mask=rdp, zero_output_for_mask=self.zero_output_for_mask, ids=token_ids)
        outputs = None
        if why is None:
            # The kernels decide the fast path: they run one and name it, or decline (NotImplementedError).
            # Without return_sequences they return the last output only: with token ids no (B, T, u) outputs
            # are written and no gradient of them is filled and read back.
            kernels, _ = fused_kernels()
            try:
                outputs, h, c, path = lstm_fused(kernels, call, input_masks=dp,
                                                 return_sequences=self.return_sequences)
                self.last_path, self.last_kernel = "fused", path
            except NotImplementedError as declined:
                why = str(declined)
        if outputs is None:
            if self.use_cudnn is True:
                raise ConfigError(f"{self.name}: use_cudnn=True but the fused path is impossible: {why}")
            if _embedding is not None:
                call = replace(call, x=_embedding(ids), ids=None)
            outputs, h, c = lstm_cell_loop(
                call, activation=cell.activation, recurrent_activation=cell.recurrent_activation,
                input_masks=dp, return_sequences=self.return_sequences)
            outputs = outputs if self.return_sequences else outputs[:, -1]
            self.last_path, self.last_kernel = "loop", None
        if self.stateful:
            # Carry values, not the graph: the next batch starts from them (truncated backpropagation).
            self._state_h, self._state_c = h.detach(), c.detach()
        output = outputs.transpose(0, 1) if self.time_major and self.return_sequences else outputs
        return output, h, c

    def _check_mask(self, mask: Any, inputs: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        if mask is None:
            return None
        mask = torch.as_tensor(mask, device=x.device)
        expected = tuple(inputs.shape[:2])
        if tuple(mask.shape) != expected:
            raise ConfigError(f"{self.name}: mask must have shape {expected} "
                              f"({'timesteps, batch' if self.time_major else 'batch, timesteps'}) for inputs "
                              f"of shape {tuple(inputs.shape)}, got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)
        return mask.transpose(0, 1) if self.time_major else mask

    def _initial_state(self, initial_state: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, units = x.shape[0], self.units
        if self.stateful:
            if self._state_h is None:
                self._state_h, self._state_c = self.cell.get_initial_state(batch, x.device)
            if self._state_h.shape[0] != batch:
                raise ConfigError(
                    f"{self.name}: a stateful LSTM keeps one state per sample, built for batch size "
                    f"{self._state_h.shape[0]}, got a batch of {batch}; feed batches of the same size "
                    "(drop the last partial batch) or build a new layer"
                )
        if initial_state is not None:
            if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2:
                raise ConfigError(f"{self.name}: initial_state must be a list [h, c] of two (batch, units) "
                                  f"tensors, got {type(initial_state).__name__}")
            return (_as_state(initial_state[0], "h", self.name, batch, units, x),
                    _as_state(initial_state[1], "c", self.name, batch, units, x))
        if self.stateful:
            return self._state_h.to(x.device, x.dtype), self._state_c.to(x.device, x.dtype)
        return tuple(torch.zeros(batch, units, dtype=x.dtype, device=x.device) for _ in range(2))  # type: ignore[return-value]

    def compute_mask(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> Any:
        out = mask if self.return_sequences else None
        return [out, None, None] if self.return_state else out

    def compute_output_shape(self, input_shape: Shape) -> Any:
        if self.time_major:
            steps, batch = input_shape[0], input_shape[1]
            out: Shape = (steps, batch, self.units) if self.return_sequences else (batch, self.units)
        else:
            batch, steps = input_shape[0], input_shape[1]
            out = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        return [out, (batch, self.units), (batch, self.units)] if self.return_state else out

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cell_cfg = self.cell.get_config()
        for key in ("name", "trainable", "dtype", "batch_input_shape"):
            cell_cfg.pop(key, None)
        cfg.update(cell_cfg)
        cfg.update(
            activity_regularizer=serialize_option(self.activity_regularizer),
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            time_major=self.time_major,
            unroll=self.unroll,
            use_cudnn=self.use_cudnn,
            zero_output_for_mask=self.zero_output_for_mask,
        )
        return cfg

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}, return_sequences={self.return_sequences}"


def _as_state(value: Any, name: str, layer: str, batch: int, units: int, like: torch.Tensor) -> torch.Tensor:
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if tuple(t.shape) != (batch, units):
        raise ConfigError(f"{layer}: initial_state {name} must have shape ({batch}, {units}), got {tuple(t.shape)}")
    return t.to(dtype=like.dtype, device=like.device)
