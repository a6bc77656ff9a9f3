"""The layer graph of a model and the one executor that runs it (Keras's ``ops/function.py``).

Sequential and Functional models are both a :class:`Graph`: the layer calls (nodes) between their symbolic
inputs and outputs, found by walking the outputs' history back to the inputs, ordered by depth as Keras
orders them (so ``model.layers`` and ``get_weights()`` come in Keras's order), and run node by node with
their masks (``compute_mask``) passed along.

One graph pass is made for speed: an ``Embedding`` whose output only feeds an ``LSTM`` is run together
with it (``LSTM.call_embedding``: the input projection is computed once per vocabulary row instead of once
per token) whenever the LSTM says at call time that it can (``LSTM.accepts_embedding``), in any model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lstmtext.errors import ConfigError
from lstmtext.layers.base import Layer
from lstmtext.layers.input_layer import InputLayer
from lstmtext.layers.symbolic import KerasTensor, Node, flatten, pack_like


@dataclass
class _Deferred:
    """An Embedding's output not computed: its ids (and mask) wait for the LSTM that takes them together."""

    ids: torch.Tensor
    mask: torch.Tensor | None


def _check_tensors(structure: Any, what: str, owner: str) -> list[KerasTensor]:
    leaves = flatten(structure)
    for x in leaves:
        if not isinstance(x, KerasTensor):
            raise ConfigError(f"{owner}: all {what} must be symbolic tensors (from Input(...) and layers called on "
                              f"them), got {type(x).__name__}: {x!r:.100}")
    if not leaves:
        raise ConfigError(f"{owner}: {what} must hold at least one symbolic tensor")
    return leaves


class Graph:
    """The nodes between ``inputs`` and ``outputs`` (nests of symbolic tensors), in execution order.

    Args:
        inputs: the model's inputs: tensors made by :func:`~lstmtext.layers.Input`.
        outputs: tensors computed from them by calling layers.
        owner: the model's name, for errors.

    Raises:
        ConfigError: a non-symbolic value, an input that is not an ``Input``, a cycle, an output not computed
            from the inputs (naming the layer and the input it needs), or two layers with one name.
    """

    def __init__(self, inputs: Any, outputs: Any, owner: str = "model") -> None:
        self.inputs_struct, self.outputs_struct = inputs, outputs
        self.inputs = _check_tensors(inputs, "inputs", owner)
        self.outputs = _check_tensors(outputs, "outputs", owner)
        for x in self.inputs:
            if x.history is None or not isinstance(x.history[0], InputLayer):
                raise ConfigError(f"{owner}: inputs must be tensors made by Input(...), got {x!r} made by "
                                  f"{'nothing' if x.history is None else repr(x.history[0].name)}")
        if len({id(x) for x in self.inputs}) != len(self.inputs):
            raise ConfigError(f"{owner}: the same Input is given twice among the inputs")
        self.nodes, self.layers = self._map_graph(owner)
        self._fused = self._embedding_lstm_pairs()
        self._fused_lstm = {id(emb): lstm for lstm in self.nodes for emb in [self._fused.get(id(lstm))] if emb}

    # -- construction ---------------------------------------------------------------------------
    def _map_graph(self, owner: str) -> tuple[list[Node], list[Layer]]:
        finished: set[int] = set()
        in_progress: set[int] = set()
        ordered: list[Node] = []  # inputs -> outputs
        layer_index: dict[int, int] = {}
        input_ids = {id(x) for x in self.inputs}

        def visit(tensor: KerasTensor) -> None:
            if tensor.history is None:
                raise ConfigError(f"{owner}: tensor {tensor!r} was not made by a layer call")
            layer, node_index, _ = tensor.history
            node = layer._inbound_nodes[node_index]
            if id(node) in finished:
                return
            if id(node) in in_progress:
                raise ConfigError(f"{owner}: tensor {tensor!r} from layer {layer.name!r} is part of a cycle")
            layer_index.setdefault(id(layer), len(layer_index))
            in_progress.add(id(node))
            for t in node.input_tensors:
                visit(t)
            in_progress.discard(id(node))
            finished.add(id(node))
            ordered.append(node)

        for out in self.outputs:
            visit(out)

        # Depth: the longest path to an output; deeper nodes run first (Keras's order).
        node_depth: dict[int, int] = {}
        layer_depth: dict[int, int] = {}
        in_graph = {id(n) for n in ordered}
        by_id = {id(n): n for n in ordered}
        for node in reversed(ordered):
            depth = node_depth.setdefault(id(node), 0)
            depth = max(depth, layer_depth.get(id(node.layer), 0))
            layer_depth[id(node.layer)] = node_depth[id(node)] = depth
            for parent in node.parent_nodes:
                if id(parent) in in_graph:
                    node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
        layers_by_id: dict[int, Layer] = {id(n.layer): n.layer for n in ordered}
        for x in self.inputs:  # an input no output uses still belongs to the model
            layer = x.history[0]  # type: ignore[index]
            if id(layer) not in layer_depth:
                layer_depth[id(layer)] = 0
                layer_index[id(layer)] = -1
                layers_by_id[id(layer)] = layer
        layers = sorted(layers_by_id.values(), key=lambda la: (-layer_depth[id(la)], layer_index[id(la)]))
        nodes = sorted((by_id[k] for k in node_depth), key=lambda n: -node_depth[id(n)])

        # Every tensor a node needs must come from the inputs.
        computable = set(input_ids)
        for node in nodes:
            if isinstance(node.layer, InputLayer):
                tensor = node.outputs
                if id(tensor) not in input_ids:
                    users = [n.layer.name for n in nodes if any(t is tensor for t in n.input_tensors)]
                    raise ConfigError(
                        f"{owner}: the outputs are not connected to the inputs: layer {users[0]!r} needs Input "
                        f"{node.layer.name!r} {tensor.shape}, which is not among the model's inputs "
                        f"{[x.name for x in self.inputs]}")
                continue
            for t in node.input_tensors:
                if id(t) not in computable:
                    raise ConfigError(f"{owner}: the outputs are not connected to the inputs: layer "
                                      f"{node.layer.name!r} needs {t!r}, which is not computed from the inputs")
            computable.update(id(t) for t in node.output_tensors)

        names = [la.name for la in layers]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(f'{owner}: the name "{name}" is used {names.count(name)} times in the model; '
                                  "all layer names must be unique")
        return [n for n in nodes if not isinstance(n.layer, InputLayer)], layers

    def _embedding_lstm_pairs(self) -> dict[int, Node]:
        """``{id(lstm node): embedding node}`` where an Embedding's output goes to one LSTM only, as its input."""
        consumers: defaultdict[int, int] = defaultdict(int)
        for node in self.nodes:
            for t in node.input_tensors:
                consumers[id(t)] += 1
        for t in self.outputs:
            consumers[id(t)] += 1
        pairs: dict[int, Node] = {}
        for node in self.nodes:
            x = node.args[0] if len(node.args) == 1 else None
            if not isinstance(x, KerasTensor) or node.kwargs or not hasattr(node.layer, "accepts_embedding"):
                continue
            producer = x.node
            if (producer is not None and type(producer.layer).__name__ == "Embedding"
                    and producer in self.nodes and consumers[id(x)] == 1 and not producer.args[1:]):
                pairs[id(node)] = producer
        return pairs

    # -- running ----------------------------------------------------------------------------------
    def run(self, inputs: list[Any], masks: list[Any] | None = None, training: bool = False,
            with_masks: bool = False) -> Any:
        """The outputs (in the outputs' structure) for ``inputs``: one value per model input, in order.

        With ``with_masks``, ``(outputs, output masks)``, the masks in the outputs' structure (None where an
        output has none): what a model used as a layer passes on to the layers after it, as in Keras, where
        the mask its inner layers computed stays on the tensor.
        """
        values: dict[int, Any] = {}
        mask_of: dict[int, Any] = {}
        for i, (x, v) in enumerate(zip(self.inputs, inputs)):
            values[id(x)] = v
            mask_of[id(x)] = masks[i] if masks is not None else None
        for node in self.nodes:
            arg = node.args[0]
            lstm_node = self._fused_lstm.get(id(node))
            if lstm_node is not None:
                x = values[id(arg)]
                if lstm_node.layer.accepts_embedding(node.layer, training):
                    out_t = node.outputs
                    mask = node.layer.compute_mask(x, mask_of[id(arg)])
                    values[id(out_t)] = _Deferred(x, mask)
                    mask_of[id(out_t)] = mask
                    continue
            x_in = values[id(arg)] if isinstance(arg, KerasTensor) else None
            if isinstance(x_in, _Deferred):
                out = node.layer.call_embedding(self._fused[id(node)].layer, x_in.ids, mask=x_in.mask,
                                                training=training)
                out_mask = node.layer.compute_mask(x_in.ids, x_in.mask)
            else:
                args = _fill(arg, values)
                mask = _fill(arg, mask_of)
                if all(m is None for m in flatten(mask)):
                    mask = None
                kwargs = {k: _fill(v, values) for k, v in node.kwargs.items()}
                inner = getattr(node.layer, "_graph", None)
                if isinstance(inner, Graph) and not kwargs:
                    # a model used as a layer: one run gives its outputs and the masks its layers computed
                    out, out_mask = node.layer.call_with_mask(args, mask=mask, training=training)
                else:
                    out = node.layer(args, mask=mask, training=training, **kwargs)
                    out_mask = node.layer.compute_mask(args, mask)
            outs = node.output_tensors
            flat = flatten(out) if len(outs) > 1 else [out]
            flat_masks = (flatten(out_mask) if isinstance(out_mask, (list, tuple)) and len(outs) > 1
                          else [out_mask] * len(outs))
            for t, v, m in zip(outs, flat, flat_masks):
                values[id(t)] = v
                mask_of[id(t)] = m
        out = pack_like(self.outputs_struct, [values[id(x)] for x in self.outputs])
        if with_masks:
            return out, pack_like(self.outputs_struct, [mask_of[id(x)] for x in self.outputs])
        return out

    def output_masks(self) -> list[Any]:
        """Whether each output carries a mask (its shape), in the outputs' order."""
        return [x.mask_shape for x in self.outputs]

    def inputs_from(self, data: Any, owner: str) -> list[Any]:
        """``data`` (one value, a list, or a dict by input name) as one value per model input, in order, each
        of its input's rank (Keras's ``_adjust_input_rank``)."""
        return [adjust_rank(v, x) for v, x in zip(self._inputs_from(data, owner), self.inputs)]

    def _inputs_from(self, data: Any, owner: str) -> list[Any]:
        n = len(self.inputs)
        if isinstance(data, Mapping):
            names = [x.name for x in self.inputs]
            if isinstance(self.inputs_struct, Mapping):
                struct_keys = sorted(self.inputs_struct)
                if set(data) >= set(struct_keys):
                    return flatten({k: data[k] for k in struct_keys})
            missing = [name for name in names if name not in data]
            if missing:
                raise ConfigError(f"{owner}: the inputs dict has keys {sorted(data)}; the model's inputs are "
                                  f"named {names} (missing {missing})")
            return [data[name] for name in names]
        if n == 1:
            if isinstance(data, (list, tuple)) and len(data) == 1:
                return [data[0]]
            return [data]
        leaves = flatten(data) if isinstance(data, (list, tuple)) else [data]
        if len(leaves) != n:
            raise ConfigError(f"{owner}: expects {n} inputs {[x.name for x in self.inputs]}, got "
                              f"{len(leaves)} value(s)")
        return leaves


def adjust_rank(value: Any, x: KerasTensor) -> Any:
    """Keras's rank rule: ``(N,)`` data for an ``Input(shape=(1,))`` gets its last axis, and ``(N, ..., 1)`` data
    one axis longer than the input loses it; anything else is left for the layers to judge."""
    shape = getattr(value, "shape", None)
    if shape is None or isinstance(value, KerasTensor):
        return value
    if len(shape) == len(x.shape) - 1 and x.shape[-1] == 1:
        return value[..., None] if isinstance(value, np.ndarray) else value.unsqueeze(-1)
    if len(shape) == len(x.shape) + 1 and len(shape) and shape[-1] == 1:
        return value[..., 0] if isinstance(value, np.ndarray) else value.squeeze(-1)
    return value


def _fill(structure: Any, values: dict[int, Any]) -> Any:
    if isinstance(structure, KerasTensor):
        return values[id(structure)]
    if isinstance(structure, (list, tuple, dict)):
        return pack_like(structure, [values[id(x)] if isinstance(x, KerasTensor) else x
                                     for x in flatten(structure)])
    return structure
