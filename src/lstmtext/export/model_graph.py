"""A model's layer graph written as ONNX, node by node: Functional and Sequential models alike.

Both kinds of model are a :class:`~lstmtext.models.graph.Graph` (the executor's), so the exporter walks
its nodes in execution order and writes each call with the lowerings of :mod:`lstmtext.export.layers`
(one input), :mod:`lstmtext.export.merging` (several inputs) and :mod:`lstmtext.export.lstm`
(``initial_state`` / ``return_state``); a model used as a layer is written inline, its output masks
passed on as the executor does. A ``TextVectorization`` on a string input is not part of the ONNX graph:
the graph starts at its output (token ids, or the multi-hot/count/TF-IDF rows), and the layer's vocabulary
and settings travel in the metadata (see :mod:`lstmtext.export.metadata`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmtext.errors import ConfigError, ExportError
from lstmtext.export.graph import GraphBuilder
from lstmtext.export.layers import Flow, lower_layer
from lstmtext.export.lstm import MaskInfo, lower_bidirectional, lower_lstm_node
from lstmtext.export.merging import CALL_ARGUMENTS, MULTI_INPUT_LOWERINGS
from lstmtext.layers.symbolic import KerasTensor, flatten

INPUT_NAME, OUTPUT_NAME = "inputs", "outputs"


@dataclass
class GraphInput:
    """One input of the ONNX graph.

    Attributes:
        name: the ONNX input name (``"inputs"`` for a one-input model, else the ``Input`` layer's name).
        source: the model input (a symbolic tensor) it stands for.
        tensor: the graph tensor it feeds: ``source``, or the output of the ``TextVectorization`` on it.
        dtype: int64 (token ids) or float32.
        dims: the ONNX shape (``"batch"``, symbolic or fixed sizes).
        ids_high: for ids, one more than the largest id the check inputs use.
        pad: the padding value of the check inputs (0, or a leading ``Masking`` layer's ``mask_value``).
        text_layer: the ``TextVectorization`` layer the input goes through first (None for numbers).
    """

    name: str
    source: KerasTensor
    tensor: KerasTensor
    dtype: np.dtype
    dims: list[Any]
    ids_high: int | None = None
    pad: float = 0.0
    text_layer: Any = None


@dataclass
class ExportPlan:
    """What the exporter writes for a model: its graph's inputs and outputs as ONNX names."""

    graph: Any
    inputs: list[GraphInput]
    output_names: list[str]
    skip: set[int] = field(default_factory=set)  # ids of the nodes left out (TextVectorization)

    @property
    def text_layer(self) -> Any:
        layers = [x.text_layer for x in self.inputs if x.text_layer is not None]
        return layers[0] if layers else None


def _consumers(graph: Any, tensor: KerasTensor) -> list[Any]:
    return [n for n in graph.nodes if any(t is tensor for t in n.input_tensors)]


def _first_users(graph: Any, tensor: KerasTensor) -> list[Any]:
    """The layers that ``tensor`` reaches first, looking through nested models to their own first layers and
    through layers that only reorder their input (``reorders_only``: ReverseSequence)."""
    out = []
    for node in _consumers(graph, tensor):
        inner = getattr(node.layer, "_graph", None)
        if inner is not None and isinstance(node.args[0], KerasTensor) and len(inner.inputs) == 1:
            out += _first_users(inner, inner.inputs[0])
        elif getattr(node.layer, "reorders_only", False) and isinstance(node.outputs, KerasTensor):
            out += _first_users(graph, node.outputs)
        else:
            out.append(node.layer)
    return out


def _onnx_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "input"
    out, i = base, 1
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def plan_export(model: Any) -> ExportPlan:
    """The inputs and outputs of ``model``'s ONNX graph.

    Raises:
        ExportError: an unbuilt model, a subclassed one (its ``call`` is Python, not a layer graph), or a
            string input that does not go to exactly one ``TextVectorization``.
    """
    name = getattr(model, "name", "?")
    graph = getattr(model, "_graph", None)
    if not getattr(model, "built", False) or (graph is None and hasattr(model, "build_input_shape")):
        raise ExportError(f"model {name!r} cannot be exported: it is not built yet (give it an Input(shape), call "
                          "build((None, maxlen)) or fit/predict it once)")
    if graph is None:
        raise ExportError(f"model {name!r} ({type(model).__name__}) cannot be exported: a subclassed model is "
                          "defined by Python code in call(), not by a layer graph; build it with the Functional "
                          "API (Model(inputs, outputs)) or as a Sequential model to export it")
    single = len(graph.inputs) == 1
    taken = {INPUT_NAME, OUTPUT_NAME}
    inputs: list[GraphInput] = []
    skip: set[int] = set()
    for x in graph.inputs:
        onnx_name = INPUT_NAME if single else _onnx_name(x.name or "input", taken)
        seq = "sequence" if single else f"{onnx_name}_sequence"
        if x.dtype == "string":
            users = _consumers(graph, x)
            node = users[0] if len(users) == 1 else None
            if node is None or type(node.layer).__name__ != "TextVectorization" or node.args[0] is not x:
                layers = [n.layer.name for n in users]
                raise ExportError(f"model {name!r} cannot be exported: its text input {x.name!r} goes to {layers}; "
                                  "ONNX graphs take numbers, so a text input must go to exactly one "
                                  "TextVectorization layer (whose vocabulary is written beside the graph)")
            if len(_consumers(graph, node.outputs)) == 0 and any(node.outputs is o for o in graph.outputs):
                raise ExportError(f"model {name!r} cannot be exported: it is only a TextVectorization layer")
            check_text_layer(node.layer)
            skip.add(id(node))
            tv = node.layer
            if tv.output_mode == "int":
                inputs.append(GraphInput(onnx_name, x, node.outputs, np.dtype(np.int64), ["batch", seq],
                                         ids_high=max(2, tv.vocabulary_size()), text_layer=tv))
            else:
                inputs.append(GraphInput(onnx_name, x, node.outputs, np.dtype(np.float32),
                                         ["batch", tv._depth], text_layer=tv))
            continue
        users = _first_users(graph, x)
        embeddings = [u for u in users if type(u).__name__ == "Embedding"]
        ids = bool(embeddings) or x.dtype.startswith(("int", "uint"))
        shape = tuple(x.shape)
        # the sequence axis (ids (B, T), features (B, T, F)) stays dynamic even when declared: a model built
        # for 300 steps runs on 40; the features of a (B, F) input (an LSTM state, say) stay as declared
        timed = ids or len(shape) >= 3
        dims: list[Any] = ["batch"] + [seq if i == 1 and (timed or d is None) else d if d is not None
                                       else f"{onnx_name}_dim_{i}" for i, d in enumerate(shape[1:], start=1)]
        if not ids and len(shape) >= 3 and any(d is None for d in shape[2:]):
            raise ExportError(f"model {name!r} cannot be exported: without an Embedding first, input {x.name!r} "
                              f"must be (batch, timesteps, features) with known features, got {shape}")
        masking = [u for u in users if type(u).__name__ == "Masking"]
        inputs.append(GraphInput(
            onnx_name, x, x, np.dtype(np.int64 if ids else np.float32), dims,
            ids_high=min(int(e.input_dim) for e in embeddings) if embeddings else (10 if ids else None),
            pad=float(masking[0].mask_value) if masking else 0.0))
    if sum(1 for x in inputs if x.text_layer is not None) > 1:
        raise ExportError(f"model {name!r} cannot be exported: it has several text inputs; the exported graph "
                          "and its sidecar describe one TextVectorization")
    if len(graph.outputs) == 1:
        outputs = [OUTPUT_NAME]
    else:
        names = model.known_output_names() or [f"output_{i}" for i in range(len(graph.outputs))]
        taken_out = {x.name for x in inputs}
        outputs = [_onnx_name(n, taken_out) for n in names]
    return ExportPlan(graph, inputs, outputs, skip)


def check_text_layer(layer: Any) -> None:
    """Raise :class:`ExportError` unless ``layer``'s text processing can be written down for the sidecar."""
    problems = []
    for arg in ("standardize", "split"):
        value = getattr(layer, f"_{arg}")
        if value is not None and not isinstance(value, str):
            problems.append(f"{arg} is a Python callable ({getattr(value, '__name__', type(value).__name__)}), "
                            "which the sidecar cannot describe to code outside Python")
    if getattr(layer, "_index", None) is None:
        problems.append("it has no vocabulary yet (call adapt() or pass vocabulary=)")
    if problems:
        raise ExportError(f"layer {layer.name!r} (TextVectorization) cannot be exported: {'; '.join(problems)}")


# -- writing the nodes ------------------------------------------------------------------------------------
def lower_graph(g: GraphBuilder, graph: Any, feeds: dict[int, Flow], skip: set[int] | None = None) -> list[Flow]:
    """Append every node of ``graph``; ``feeds`` gives the flows of its inputs (by ``id`` of the tensor)."""
    values = dict(feeds)
    for node in graph.nodes:
        if skip and id(node) in skip:
            continue
        outs = _lower_node(g, node, values)
        tensors = node.output_tensors
        if len(outs) != len(tensors):
            raise ExportError(f"layer {node.layer.name!r} ({type(node.layer).__name__}): the exporter wrote "
                              f"{len(outs)} outputs, the layer has {len(tensors)}")
        for t, f in zip(tensors, outs):
            values[id(t)] = Flow(f.x, f.mask, len(t.shape), f.cache)
    return [values[id(x)] for x in graph.outputs]


def _lower_node(g: GraphBuilder, node: Any, values: dict[int, Flow]) -> list[Flow]:
    layer = node.layer
    kind = type(layer).__name__
    arg = node.args[0]

    def flow(t: Any) -> Flow:
        if not isinstance(t, KerasTensor):
            raise ExportError(f"layer {layer.name!r} ({kind}) cannot be exported to ONNX: it is called on a "
                              f"constant ({type(t).__name__}), not on tensors of the graph")
        return values[id(t)]

    inner = getattr(layer, "_graph", None)
    if inner is not None and hasattr(layer, "layers"):  # a model used as a layer: written inline
        try:
            ordered = inner.inputs_from(arg, layer.name)
        except ConfigError as e:
            raise ExportError(f"layer {layer.name!r} ({kind}): {e}") from e
        if node.kwargs:
            raise ExportError(f"layer {layer.name!r} ({kind}) cannot be exported to ONNX: called with "
                              f"{sorted(node.kwargs)}")
        feeds = {id(x): flow(t) for x, t in zip(inner.inputs, ordered)}
        return lower_graph(g, inner, feeds)
    if kind in MULTI_INPUT_LOWERINGS and type(layer).__module__.startswith("lstmtext."):
        allowed = CALL_ARGUMENTS.get(kind, ())
        extra = sorted(set(node.kwargs) - set(allowed))
        if extra:
            raise ExportError(f"layer {layer.name!r} ({kind}) cannot be exported to ONNX: called with {extra}")
        if not isinstance(arg, (list, tuple)):
            raise ExportError(f"layer {layer.name!r} ({kind}) cannot be exported to ONNX: it takes a list of "
                              "tensors")
        return MULTI_INPUT_LOWERINGS[kind](g, layer, [flow(t) for t in arg], **node.kwargs)
    if kind == "LSTM" and type(layer).__module__.startswith("lstmtext.") and (node.kwargs or layer.return_state):
        extra = sorted(set(node.kwargs) - {"initial_state"})
        if extra:
            raise ExportError(f"layer {layer.name!r} (LSTM) cannot be exported to ONNX: called with {extra}")
        initial = None
        if "initial_state" in node.kwargs:
            states = flatten(node.kwargs["initial_state"])
            if len(states) != 2:
                raise ExportError(f"layer {layer.name!r} (LSTM) cannot be exported to ONNX: initial_state must be "
                                  f"[h, c], got {len(states)} tensors")
            initial = (flow(states[0]).x, flow(states[1]).x)
        f = flow(arg)
        outs = lower_lstm_node(g, layer, f.x, f.mask, f.cache, initial)
        out_mask = f.mask if layer.return_sequences else None
        return [Flow(outs[0], out_mask, 3 if layer.return_sequences else 2, f.cache)] + \
            [Flow(s, None, 2, f.cache) for s in outs[1:]]  # states carry no mask
    if kind == "Bidirectional" and type(layer).__module__.startswith("lstmtext.") and layer.return_state \
            and not node.kwargs:
        f = flow(arg)
        states: list[str] = []
        out = lower_bidirectional(g, layer, f.x, f.mask, f.cache, states)
        out_mask = f.mask if layer.return_sequences else None
        return [Flow(out, out_mask, 3 if layer.return_sequences else 2, f.cache)] + \
            [Flow(s, None, 2, f.cache) for s in states]
    if node.kwargs:
        raise ExportError(f"layer {layer.name!r} ({kind}) cannot be exported to ONNX: called with "
                          f"{sorted(node.kwargs)}, which the exporter does not translate")
    if isinstance(arg, (list, tuple, dict)):
        raise ExportError(f"layer {layer.name!r} ({kind}) cannot be exported to ONNX: no ONNX translation for "
                          "this layer class on several inputs")
    return [lower_layer(g, layer, flow(arg))]


def new_cache() -> dict[str, MaskInfo]:
    """The per-graph cache of mask-derived tensors shared by every flow."""
    return {}
